"""Process privileges on the Python side: whom the process acts for (the requester) and host
file access with the requester's permissions, init's parent-death signal, and in rootless mode
the capabilities init carries across the execve of the C init.

The privilege drop itself (capabilities, uid and gid, no_new_privs, seccomp) happens in the C
init's program child, just before execve (``cellbox/spawn/init.c``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cellbox.linux import syscalls as sc

PR_SET_PDEATHSIG = 1
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


LAST_CAP = _last_cap()


@dataclass(frozen=True)
class Credentials:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()  # supplementary

    @classmethod
    def of_process(cls) -> Credentials:
        """The real ids: a setuid-style caller's own, as isolate takes them."""
        return cls(os.getuid(), os.getgid(), tuple(os.getgroups()))


_requester: Credentials | None = None


def requester() -> Credentials:
    """Whom this process acts for: a root daemon's worker, for its client (``act_for``);
    any other process, for itself."""
    return _requester or Credentials.of_process()


def act_for(client: Credentials) -> None:
    """From now on this process (a forked worker of the root daemon) acts for ``client``."""
    global _requester
    _requester = client


@contextmanager
def requester_access() -> Iterator[None]:
    """Host files opened or looked up in this block are checked with the requester's
    permissions (fs uid, gid and supplementary groups), never root's, as isolate does for a
    setuid caller: a user reaches nothing through cellbox that they could not open
    themselves. A no-op where the process is the requester, or the requester is root."""
    r = _requester
    if r is None or r.uid == 0 or os.geteuid() != 0:
        yield
        return
    saved = os.getgroups()
    os.setgroups(list(r.groups))
    try:
        sc.set_fs_ids(r.uid, r.gid)
        try:
            yield
        finally:
            sc.set_fs_ids(0, 0)
    finally:
        os.setgroups(saved)


def die_with_parent() -> None:
    sc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def keep_capabilities_across_exec() -> None:
    """Rootless mode: init holds every capability in the box's user namespace, but as the box
    uid (not 0 there), so an execve would drop them all; the C init needs them (hostname,
    loopback, a warm box's namespaces and mounts). Ambient capabilities survive execve; the
    C init clears the ambient set in the program before it drops the rest."""
    full = (1 << (LAST_CAP + 1)) - 1
    sc.capset(full, full, full)  # ambient needs each capability permitted and inheritable
    for cap in range(LAST_CAP + 1):
        sc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
