"""The child side of one run, in Python: init (pid 1 of the box) up to the exec of the C init.

``init_main`` runs in the process the keeper cloned into the new namespaces and never returns:
it builds the box's root, then execs the C init (``cellbox/spawn/init.c``), which reads the
run's request (or, for a warm box, one request per run) and forks, confines and execs the
program. Any failure is reported to the keeper over the status pipe and becomes an XX result
naming the step that failed (see ``keeper``).
"""

from __future__ import annotations

import json
import os
import select
from dataclasses import dataclass
from typing import NoReturn

from cellbox.linux import mounts, privileges, userns
from cellbox.spawn.request import RunFds
from cellbox.spec import RunSpec

MAXFD = 1 << 20


@dataclass(frozen=True)
class ChildFds:
    """The keeper's pipe ends a child inherits (all close-on-exec)."""

    status_w: int  # child -> keeper: JSON messages, one per line
    lifeline_r: int  # EOF here means the keeper is gone
    request: int  # keeper -> C init: the run's request (a pipe), or a warm box's socket
    run: RunFds | None  # what the program gets (stdio pipes, cgroup join files); None: a
    # warm box, whose runs bring their own fds with each request

    @property
    def pool(self) -> bool:
        return self.run is None

    def for_init(self) -> list[int]:
        """What the C init inherits across execve."""
        run = self.run
        return [self.status_w, self.request] + ([] if run is None else [
            *run.join, *(fd for fd in (run.stdin, run.stdout, run.stderr) if fd is not None)])

    def keep(self) -> set[int]:
        return {0, 1, 2, self.lifeline_r, *self.for_init()}


def _send(fd: int, **msg: object) -> None:
    os.write(fd, (json.dumps(msg) + "\n").encode())


def _close_fds_except(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep) + [MAXFD]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def init_main(spec: RunSpec, fds: ChildFds, init_path: str) -> NoReturn:
    """pid 1 of the box: build the root, then become the C init at ``init_path``."""
    step = "starting"
    try:
        if spec.id_map is not None:
            step = "waiting for the user namespace's uid/gid maps"
            userns.wait_for_id_maps(fds.lifeline_r)
        step = "arming the parent-death signal"
        privileges.die_with_parent()  # kept across execve
        lifeline = select.poll()  # not select(): a keeper of many runs has fds over 1024
        lifeline.register(fds.lifeline_r, select.POLLIN)
        if lifeline.poll(0):
            os._exit(1)  # the keeper died before the death signal was armed
        if not spec.inherit_fds:
            _close_fds_except(fds.keep())
        os.umask(0o022)
        step = "opening the box's init"
        # Opened before pivot_root, which hides the host's files; exec'd through the fd.
        init_fd = os.open(init_path, os.O_PATH | os.O_CLOEXEC)
        step = "building the box's root filesystem"
        mounts.build_root(os.path.join(spec.box_dir, "root"), spec.rules, spec.box_dir,
                          os.path.join(spec.box_dir, "tmp"))
        step = "starting the box's init"
        if spec.id_map is not None:
            privileges.keep_capabilities_across_exec()
        for fd in fds.for_init():
            os.set_inheritable(fd, True)
        mode = ["--pool"] if fds.pool else []
        os.execve(init_fd, ["cellbox-init", *mode, str(fds.request), str(fds.status_w)], {})
    except BaseException as e:  # noqa: BLE001 - a child must never unwind into the caller
        _report_and_exit(fds.status_w, step, e)


def _report_and_exit(fd: int, step: str, e: BaseException) -> NoReturn:
    try:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        _send(fd, kind="error", step=step, error=detail or type(e).__name__)
    finally:
        os._exit(127)
