"""The warm pool: boxes kept ready, so that a run pays only fork, confinement and exec.

    from cellbox import Pool, Limits

    with Pool(size=2) as pool:
        result = pool.run(["python3", "main.py"], files={"main.py": "print(input())"},
                          stdin=b"hi", limits=Limits(time=1))

Each slot of the pool is a leased box (``Box``: its lock held for the pool's life, so a pool
process that dies leaves boxes that the next user of the lock repairs) and a warm box init in
the box's namespaces with its root built (``keeper.Slot``). The box init runs no program
itself: each run has a run init of its own, which the box init clones into new namespaces
while the run before is still going (docs/performance.md, "The pool's namespaces, made
ahead"); a run sends it a run plan, it forks, confines and execs the program, and ends with
the run. Every run starts clean, and this is the one list of what a run may change:

- the box's files: ``/box`` and ``/tmp`` are emptied by the keeper before the run, through
  directory fds (never following the box's links), then ``files`` are written;
- ``/box`` and ``/tmp`` themselves: everything a run may change about a directory (mode,
  owner, xattrs and ACLs, chattr flags, times: the list is ``storage.DIR_STATE``) is set back
  and checked by ``storage.renew_dir``;
- keyrings: the program starts with a session keyring of its own, and the box uid's user,
  user-session and persistent keyrings empty (the run init);
- processes and pids: a new pid namespace per run, whose init kills and reaps everything the
  run left before the run counts as over; the program is always pid 2;
- ``/proc``, ``/dev/shm`` and every filesystem a rule mounts: mounted again in the run's own
  mount namespace;
- SysV IPC and POSIX message queues, sockets and the loopback interface, the hostname: new
  IPC, network and UTS namespaces per run (with ``share_net``, the host's network, as for
  ``Box.run``);
- the box init's limits, priority, affinity and scheduling classes, which the program's
  children would inherit: out of the program's reach (it sees only its run init, which ends
  with the run, even where it shares its uid: rootless mode);
- counters: CPU time, peak memory and the pids count are the run's own (the box's cgroup is
  reset for each run, as for ``Box.run``).

What a pool keeps from run to run: the box's mounts, which no run can change (the program has
no capabilities), and the box init.
Like ``Box``, a pool must be used from a single-threaded process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cellbox.api import Box, RunOptions, run_in_slots, with_argv
from cellbox.config import Config
from cellbox.errors import BoxStateError, UsageError
from cellbox.limits import Limits
from cellbox.result import RunResult

if TYPE_CHECKING:
    from cellbox.keeper import Slot
    from cellbox.spec import RunSpec


# RunOptions a pool fixes for its life (its boxes' root, network and stdio)
FIXED = {"dirs", "default_dirs", "share_net", "stderr_to_stdout"}


class Pool:
    def __init__(self, size: int = 2, *, box_ids: Sequence[int] | None = None,
                 config: Config | None = None, dirs: Sequence[str] = (),
                 default_dirs: bool = True, share_net: bool = False,
                 quota: tuple[int, int] | None = None) -> None:
        """``size`` warm boxes: the first free ones, or those of ``box_ids``. ``dirs``,
        ``default_dirs``, ``share_net``: the boxes' root and network, fixed for the pool's
        life (see ``Box.run``); ``quota``: (KiB, inodes) of each box's storage."""
        ids: list[int | None] = list(box_ids) if box_ids is not None else [None] * size
        if not ids:
            raise BoxStateError("A pool needs at least one box")
        self._ids, self._config, self._quota = ids, config, quota
        self._root = RunOptions(dirs=dirs, default_dirs=default_dirs,
                                share_net=share_net).spec([])
        self._stack = contextlib.ExitStack()
        self._slots: list[tuple[Box, Slot]] = []
        self._next = 0

    def __enter__(self) -> Pool:
        try:
            for box_id in self._ids:
                box = self._stack.enter_context(Box(box_id, config=self._config,
                                                    quota=self._quota))
                slot = box.warm(self._root)
                self._stack.callback(slot.close)
                self._slots.append((box, slot))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots = []
        self._stack.close()  # each slot's box init, then each box's lease

    @property
    def box_ids(self) -> list[int]:
        return [box.box_id for box, _ in self._slots]

    def run(self, argv: Sequence[str], limits: Limits | None = None, *,
            files: Mapping[str, bytes | str] | None = None, **options: Any) -> RunResult:
        """Run ``argv`` in the next warm box, which starts empty but for ``files`` (name in
        /box: contents). ``options``: ``RunOptions``' fields but those the pool fixes."""
        return run_warm([self.prepare(argv, limits, files=files, **options)])[0]

    def prepare(self, argv: Sequence[str], limits: Limits | None = None, *,
                files: Mapping[str, bytes | str] | None = None, **options: Any) -> WarmRun:
        """``run``'s first half: the next warm box emptied, ``files`` written, the run's spec
        made; ``run_warm`` runs it (with others at once: ``cellbox.interactive``)."""
        if not self._slots:
            raise BoxStateError("The pool is not open: use 'with Pool() as pool:'")
        fixed = sorted(set(options) & FIXED)
        if fixed:
            raise UsageError(f"{', '.join(fixed)}: a pool's boxes keep their root, network "
                             "and stdio for the pool's life; give dirs, default_dirs and "
                             "share_net to Pool(), or use Box.run")
        box, slot = self._slots[self._next]
        self._next = (self._next + 1) % len(self._slots)
        run = with_argv(RunOptions(default_dirs=False,  # the slot's root stands
                                   **options).spec([], limits), argv)
        spec = replace(slot.spec, argv=run.argv, env=run.env, limits=run.limits, chdir=run.chdir,
                       seccomp=run.seccomp, capture_output=run.capture_output,
                       stdin_data=run.stdin_data)
        if not slot.alive:
            slot.start()  # its box init died (a setup step failed, or it was killed): a new one
        box.clear()
        for name, data in (files or {}).items():
            box.write_file(name, data)
        return WarmRun(box, slot, spec)


@dataclass(frozen=True)
class WarmRun:
    """A run made ready in a pool's box (``Pool.prepare``); ``box`` is where its files are,
    before and after the run (until the box's next run)."""

    box: Box
    slot: Slot
    spec: RunSpec


def run_warm(runs: Sequence[WarmRun], started: Callable[[], None] | None = None
             ) -> list[RunResult]:
    """Run prepared warm runs (each in a distinct box) all at once, supervised by this
    process; ``started`` is called once every one has started."""
    return run_in_slots([(r.box, r.spec, r.slot) for r in runs], started)
