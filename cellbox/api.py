"""The Python library: a box as a context manager.

    from cellbox import Box, Limits

    with Box() as box:
        box.write_file("main.py", b"print(input())")
        result = box.run(["python3", "main.py"], limits=Limits(time=1), stdin=b"hi")
        print(result.status, result.stdout)

``Box`` holds the box's lock for its whole lease: no other cellbox process can use the box
meanwhile, and if this process dies the lock goes with it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellbox import storage
from cellbox.box import Boxes, Caller
from cellbox.config import Config
from cellbox.errors import BoxBusyError, BoxStateError
from cellbox.limits import LIBRARY, Limits
from cellbox.policy import DEFAULT_POLICY, load_policy, parse_changes
from cellbox.lock import BoxLock
from cellbox.result import RunResult
from cellbox.rules import build_dir_rules, build_env, normalise_workdir
from cellbox.spec import RunSpec

if TYPE_CHECKING:
    from cellbox.keeper import Slot

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class Box:
    def __init__(self, box_id: int | None = None, *, config: Config | None = None,
                 wait: float | None = 0.0, quota: tuple[int, int] | None = None) -> None:
        """``box_id``: a fixed box, else the first free one. ``wait``: seconds to wait for it
        (None: forever). ``quota``: (KiB, inodes) of box storage."""
        self._boxes = Boxes(config)
        self._box_id = box_id
        self._wait = wait
        self._quota = quota
        self._lock: BoxLock | None = None
        self._caller = Caller.current()
        self.path = ""

    @property
    def box_id(self) -> int:
        return self._leased().box_id

    def __enter__(self) -> Box:
        if self._box_id is None:
            lock = self._boxes.acquire_free(self._wait)
        else:
            try:
                lock = self._boxes.lock(self._box_id, self._wait)
            except BoxBusyError as e:
                raise e.with_hint("pass wait=SECONDS (or None: no limit) to wait for it",
                                  "wait longer (wait=SECONDS, or wait=None for no limit)") \
                    from None
        try:
            self.path = self._boxes.init(lock, self._caller, self._quota, lease=True)
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            try:
                self._boxes.cleanup(self._lock, self._caller)
            finally:
                self._lock.release()
                self._lock = None

    def _leased(self) -> BoxLock:
        if self._lock is None:
            raise BoxStateError("The box is not open: use 'with Box() as box:'")
        return self._lock

    def _workdir(self) -> str:
        self.box_id  # noqa: B018 - raises if not open
        return os.path.join(self.path, "box")

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file into the box's working directory (never through a link)."""
        raw = data.encode() if isinstance(data, str) else data
        storage.write_file(self._workdir(), path, raw, mode,
                           owner=(self._caller.uid, self._caller.gid))

    def read_file(self, path: str, limit: int | None = None) -> bytes:
        """Read a regular file the program left in the box (refuses links and specials)."""
        return storage.read_file(self._workdir(), path, limit)

    def make_dir(self, path: str) -> None:
        """Create a directory (and its parents) in the box's working directory."""
        storage.make_dir(self._workdir(), path, owner=(self._caller.uid, self._caller.gid))

    def list_files(self, path: str) -> list[str]:
        """The regular files directly in a directory of the box (never through a link)."""
        return storage.list_files(self._workdir(), path)

    def copy_in(self, path: str, source: str, mode: int = 0o644) -> None:
        """Copy the host file ``source`` into the box, streamed (never whole in memory)."""
        storage.copy_in(self._workdir(), path, source, mode,
                        owner=(self._caller.uid, self._caller.gid))

    def copy_out(self, path: str, target: str, limit: int) -> int:
        """Copy a regular file the program left in the box to the new host file ``target``,
        streamed, refusing one over ``limit`` bytes (and links, specials); its size."""
        return storage.copy_out(self._workdir(), path, target, limit)

    def clear(self) -> None:
        """Remove every file from the box's working directory, through directory fds (never
        following the box's links)."""
        storage.empty_dir(self._workdir())

    def warm(self, root: RunSpec) -> Slot:
        """A warm box init in this box, started, with ``root``'s rules and network (a pool's
        slot: ``run_in_slots`` runs in it); closed by its ``close`` before the box is."""
        return self._boxes.warm(self._leased(), self._caller, root)

    def run(self, argv: Sequence[str], limits: Limits | None = None,
            **options: Any) -> RunResult:
        """Run ``argv`` in the box, with ``options`` (``RunOptions``' fields as keywords)."""
        return run_many([(self, argv)], limits, **options)[0]


@dataclass(frozen=True)
class RunOptions:
    """The options of a run besides its argv and limits: the keywords of ``Box.run``,
    ``run_many``, ``Pool.run`` and ``Pool.prepare``.

    ``stdin``: bytes or text to feed, or a ``Path`` to a host file whose contents are fed (a
    ``str`` is always text, never a path). ``env``: the program's environment (default: PATH
    only). ``dirs``: extra directory rules in isolate's syntax (e.g. "/etc/alternatives").
    ``syscalls``: seccomp policy changes, ``+NAME`` (allow) or ``-NAME[:ERRNO]`` (deny);
    ``seccomp_policy``: a built-in policy name or a TOML file. What they allow beyond the
    default is listed in ``RunResult.seccomp_weakened``. ``stderr_to_stdout``: both go to one
    stream, in the order written (``RunResult.stdout``)."""

    stdin: bytes | str | Path | None = None
    capture_output: bool = True
    env: Mapping[str, str] | None = None
    dirs: Sequence[str] = ()
    default_dirs: bool = True
    chdir: str = "/box"
    share_net: bool = False
    syscalls: Sequence[str] = ()
    seccomp_policy: str = DEFAULT_POLICY
    stderr_to_stdout: bool = False

    def spec(self, argv: Sequence[str], limits: Limits | None = None) -> RunSpec:
        """These options as a RunSpec for the box layer."""
        stdin = self.stdin
        if isinstance(stdin, Path):
            stdin = stdin.read_bytes()
        elif isinstance(stdin, str):
            stdin = stdin.encode()
        environment = dict(self.env) if self.env is not None else {"PATH": DEFAULT_PATH}
        return RunSpec(
            argv=list(argv),
            env=build_env([], False, {}) | environment,
            rules=build_dir_rules(self.dirs, defaults=self.default_dirs),
            limits=limits or LIBRARY.limits(),
            chdir=normalise_workdir(self.chdir),
            share_net=self.share_net,
            seccomp=load_policy(self.seccomp_policy, parse_changes(list(self.syscalls))),
            capture_output=self.capture_output,
            stderr_to_stdout=self.stderr_to_stdout,
            stdin_data=stdin if stdin is not None else (b"" if self.capture_output else None),
        )


def run_many(jobs: Sequence[tuple[Box, Sequence[str]]], limits: Limits | None = None,
             **options: Any) -> list[RunResult]:
    """Run each ``(box, argv)`` at the same time, with the same options (``RunOptions``),
    all supervised by this process; the results come in the order of ``jobs``. The boxes
    must be distinct open boxes of one configuration."""
    if not jobs:
        return []
    _distinct([box for box, _ in jobs], "run_many")
    base = RunOptions(**options).spec([], limits)
    leases = [(box._leased(), with_argv(base, argv)) for box, argv in jobs]
    first = jobs[0][0]
    return first._boxes.run_many(leases, first._caller)


def run_in_slots(jobs: Sequence[tuple[Box, RunSpec, Slot]],
                 started: Callable[[], None] | None = None) -> list[RunResult]:
    """Run each ``spec`` in its box's warm box init (``Box.warm``), all at once, supervised
    by this process; ``started`` is called once every one has started. The boxes must be
    distinct open boxes of one configuration."""
    _distinct([box for box, _, _ in jobs], "run_in_slots")
    for box, _, _ in jobs:
        box._leased()
    first = jobs[0][0]
    return first._boxes.run_warm(first._caller, [(spec, slot) for _, spec, slot in jobs],
                                 started)


def _distinct(boxes: Sequence[Box], what: str) -> None:
    if len({id(box) for box in boxes}) < len(boxes):
        raise BoxStateError(f"{what}() runs one program per box: a box appears twice")


def with_argv(spec: RunSpec, argv: Sequence[str]) -> RunSpec:
    if not argv:
        raise BoxStateError("run() needs a program: argv is empty")
    return replace(spec, argv=list(argv))
