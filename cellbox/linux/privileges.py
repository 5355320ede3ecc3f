"""Process privileges on the Python side: whom the process acts for (the requester) and host
file access with the requester's permissions, and the parent-death signal of the CLI daemon's
forked workers.

The box's privilege drop (capabilities, uid and gid, no_new_privs, seccomp) happens in the
box init's program child, just before execve (``cellbox/boxinit/creds.c``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cellbox.linux import syscalls as sc

PR_SET_PDEATHSIG = 1


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


def act_for(client: Credentials | None) -> None:
    """From now on this process (a worker of the root daemon) acts for ``client`` (None: for
    itself again)."""
    global _requester
    _requester = client


def served_user() -> Credentials | None:
    """The ordinary user this root process acts for (a root daemon's worker), if any."""
    r = _requester
    return r if r is not None and r.uid != 0 and os.geteuid() == 0 else None


@contextmanager
def requester_access() -> Iterator[None]:
    """Host files opened or looked up in this block are checked with the requester's
    permissions (fs uid, gid and supplementary groups), never root's, as isolate does for a
    setuid caller: a user reaches nothing through cellbox that they could not open
    themselves. A no-op where the process is the requester, or the requester is root."""
    r = served_user()
    if r is None:
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
