"""Users, groups and capabilities: the last steps before execve.

Order matters and is the caller's (``inside``): securebits and the bounding set need
CAP_SETPCAP, so they go before the uid switch, which then clears every remaining capability.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from cellbox.linux import syscalls as sc

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_GET_SECUREBITS = 27

# SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP stay off (the fix-up is what clears the caps at
# setresuid); KEEP_CAPS off. Everything locked, so the program cannot turn them back on.
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


LAST_CAP = _last_cap()


def die_with_parent() -> None:
    sc.prctl(PR_SET_PDEATHSIG, 9)


def drop_capabilities() -> None:
    """Empty the bounding and ambient sets and lock the securebits (needs CAP_SETPCAP)."""
    sc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(LAST_CAP + 1):
        sc.prctl(PR_CAPBSET_DROP, cap)
    sc.prctl(PR_SET_SECUREBITS,
             SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED
             | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE
             | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)


def become(uid: int, gid: int, rootless: bool = False) -> None:
    """Switch every uid and gid to the box's; from root this clears all capabilities.
    ``rootless``: the supplementary groups stay, as a user namespace with setgroups denied
    forbids changing them (linux/userns.py)."""
    if not rootless:
        os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise OSError("setresuid left the process as root")


def set_no_new_privs() -> None:
    sc.prctl(PR_SET_NO_NEW_PRIVS, 1)


def check_unprivileged() -> None:
    """Empty the inheritable set (setresuid leaves it alone), then check that the effective,
    permitted and inheritable sets are empty and the securebits locked: a capability left
    here would survive execve. The ambient set needs no check: the kernel keeps it within
    permitted and inheritable. The bounding set was emptied by checked calls; reading it back
    would cost 41 more calls (~0.2 ms in the forked child) for what the tests check anyway."""
    sc.capset_empty()
    effective, permitted, inheritable = sc.capget()
    leftover = [name for name, caps in (("effective", effective), ("permitted", permitted),
                                        ("inheritable", inheritable)) if caps]
    if leftover:
        raise OSError(f"capabilities remain after the uid switch: {', '.join(leftover)}")
    if not sc.prctl(PR_GET_SECUREBITS) & SECBIT_NOROOT_LOCKED:
        raise OSError("the securebits are not locked")


@contextmanager
def file_identity(uid: int, gid: int, rootless: bool = False) -> Iterator[None]:
    """Open files with the permissions of ``uid``/``gid`` while staying root otherwise.

    The caller's supplementary groups (e.g. group 0 under sudo) go too: the kernel checks
    them alongside the fs ids, so keeping them would grant the box user their access.
    ``rootless``: the fs ids are already the box's, and the groups cannot change; what must
    go for the while are the effective capabilities held in the box's user namespace (DAC
    override, and the ptrace access that would open init's /proc files)."""
    if rootless:
        effective, permitted, inheritable = sc.capget()
        sc.capset(0, permitted, inheritable)
        try:
            yield
        finally:
            sc.capset(effective, permitted, inheritable)
        return
    old_groups = os.getgroups()
    os.setgroups([])
    old_gid = sc.setfsgid(gid)
    old_uid = sc.setfsuid(uid)
    try:
        yield
    finally:
        sc.setfsuid(old_uid)
        sc.setfsgid(old_gid)
        os.setgroups(old_groups)
