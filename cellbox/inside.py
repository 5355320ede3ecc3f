"""The child side of one run: init (pid 1 of the box) and the program, up to execve.

Both functions run in a process cloned from the keeper and never return: every path ends in
execve or os._exit. Any failure is reported to the keeper over the status pipe and becomes an
XX result naming the step that failed (see ``keeper``).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import stat
import time
from dataclasses import dataclass
from typing import NoReturn

from cellbox.linux import mounts, namespaces, privileges, rlimits, seccomp, terminal, userns
from cellbox.linux.syscalls import BpfProgram
from cellbox.spec import RunSpec

MAXFD = 1 << 20


@dataclass(frozen=True)
class ChildFds:
    """The keeper's pipe ends a child inherits (all close-on-exec)."""

    status_w: int  # child -> keeper: JSON messages, one per line
    lifeline_r: int  # EOF here means the keeper is gone
    join: tuple[int, ...]  # cgroup files the program writes b"0" to, to join
    stdin: int | None  # pipe ends for captured stdio, or None
    stdout: int | None
    stderr: int | None

    def keep(self) -> set[int]:
        return {0, 1, 2, self.status_w, self.lifeline_r, *self.join,
                *(fd for fd in (self.stdin, self.stdout, self.stderr) if fd is not None)}


def _send(fd: int, **msg: object) -> None:
    os.write(fd, (json.dumps(msg) + "\n").encode())


def _close_fds_except(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep) + [MAXFD]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def init_main(spec: RunSpec, fds: ChildFds, filters: tuple[BpfProgram, ...]) -> NoReturn:
    """pid 1 of the box: build the root, fork the program, reap, report its status.
    ``filters``: the seccomp BPF the keeper compiled, for the program to load."""
    step = "starting"
    try:
        if spec.id_map is not None:
            step = "waiting for the user namespace's uid/gid maps"
            userns.wait_for_id_maps(fds.lifeline_r)
        step = "arming the parent-death signal"
        privileges.die_with_parent()
        if select.select([fds.lifeline_r], [], [], 0)[0]:
            os._exit(1)  # the keeper died before the death signal was armed
        if not spec.inherit_fds:
            _close_fds_except(fds.keep())
        os.umask(0o022)
        step = "building the box's root filesystem"
        mounts.build_root(os.path.join(spec.box_dir, "root"), spec.rules, spec.box_dir,
                          os.path.join(spec.box_dir, "tmp"))
        if not spec.share_net:
            step = "bringing up the loopback interface"
            namespaces.bring_loopback_up()
        step = "setting the hostname"
        namespaces.set_hostname("cellbox")
        step = "forking the program"
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            program_main(spec, fds, filters)
        # The wall clock limit counts from here, not from the keeper's clone: building the
        # root is the sandbox's time, and init's reported wall time starts here too.
        _send(fds.status_w, kind="started", at=started)
        for fd in (fds.stdin, fds.stdout, fds.stderr):
            if fd is not None:
                os.close(fd)
        while True:  # reap orphans until the program itself ends
            wpid, status, ru = os.wait4(-1, 0)
            if wpid == pid:
                break
        _send(fds.status_w, kind="exit", status=status, wall=time.monotonic() - started,
              maxrss=ru.ru_maxrss * 1024, nvcsw=ru.ru_nvcsw, nivcsw=ru.ru_nivcsw,
              cpu=ru.ru_utime + ru.ru_stime)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - a child must never unwind into the caller
        _report_and_exit(fds.status_w, step, e)


def _open_stdio(path: str, write: bool) -> int:
    flags = os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    flags |= (os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if write else os.O_RDONLY
    fd = os.open(path, flags, 0o666)
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def _redirect_stdio(spec: RunSpec, fds: ChildFds) -> None:
    """Open the stdio files inside the new root with the box user's permissions."""
    with privileges.file_identity(spec.uid, spec.gid, rootless=spec.id_map is not None):
        os.chdir(spec.chdir)
        new = {
            0: fds.stdin if fds.stdin is not None else (
                _open_stdio(spec.stdin, False) if spec.stdin else None),
            1: fds.stdout if fds.stdout is not None else (
                _open_stdio(spec.stdout, True) if spec.stdout else None),
            2: fds.stderr if fds.stderr is not None else (
                _open_stdio(spec.stderr, True) if spec.stderr else None),
        }
    for target, fd in new.items():
        if fd is not None:
            os.dup2(fd, target)
    if spec.stderr_to_stdout:
        os.dup2(1, 2)


def _rlimits(spec: RunSpec) -> dict[str, int | None]:
    lim = spec.limits
    nproc: dict[str, int | None] = {} if spec.nproc is None else {"nproc": spec.nproc}
    return {**nproc,
        "as": lim.address_space, "stack": lim.stack, "fsize": lim.file_size,
        # Processes are limited by the pids cgroup, which counts the hits; RLIMIT_NPROC
        # would refuse the fork first and hide them. It serves only without a cgroup.
        "core": lim.core,
        # RLIM_INFINITY is not a valid open-file limit: "unlimited" is the hard limit we have.
        "nofile": lim.open_files or resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "cpu": lim.cpu_rlimit(), "memlock": 0,
    }


def program_main(spec: RunSpec, fds: ChildFds, filters: tuple[BpfProgram, ...]) -> NoReturn:
    """The program's side: stdio, terminal, limits, drop privileges, join cgroups, seccomp,
    execve."""
    step = "starting the program"
    try:
        step = "opening stdin/stdout/stderr inside the box"
        _redirect_stdio(spec, fds)
        step = "leaving the caller's terminal session"
        if spec.tty_hack:
            terminal.take_foreground()
        else:
            terminal.detach()
        step = "setting resource limits"
        rlimits.apply(_rlimits(spec))
        step = "dropping capabilities"
        privileges.drop_capabilities()
        step = f"switching to uid {spec.uid} / gid {spec.gid}"
        privileges.become(spec.uid, spec.gid, rootless=spec.id_map is not None)
        step = "checking that no capability is left"
        privileges.check_unprivileged()
        step = "setting no_new_privs"
        privileges.set_no_new_privs()
        step = "resetting signal dispositions"
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        # Join last: the copy-on-write faults and CPU of this forked Python are not the
        # program's. Any process may move itself (v1 checks only that the uids match).
        step = "joining the box's cgroups"
        for fd in fds.join:
            os.write(fd, b"0")
        # Last: from here on only execve (and, on failure, the report to the keeper) runs.
        step = "loading the seccomp filter"
        seccomp.install(filters)
        step = f"executing {spec.argv[0]}"
        os.execvpe(spec.argv[0], spec.argv, spec.env)
    except BaseException as e:  # noqa: BLE001
        _report_and_exit(fds.status_w, step, e)


def _report_and_exit(fd: int, step: str, e: BaseException) -> NoReturn:
    try:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        _send(fd, kind="error", step=step, error=detail or type(e).__name__)
    finally:
        os._exit(127)

