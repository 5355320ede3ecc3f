"""PID, mount, network, IPC and UTS namespaces (and the user namespace's flag; see userns).

Parent side: ``clone_flags`` picks the namespaces for a run. The child side (loopback up, the
hostname, and for a warm box fresh IPC and network namespaces per run) is in the C init,
``cellbox/spawn/init.c``.
"""

from __future__ import annotations

from cellbox.linux import syscalls as sc


def clone_flags(share_net: bool, user: bool = False) -> int:
    """``user``: rootless mode; the kernel creates the user namespace first and makes it the
    owner of the others, so the child holds every capability over them and none outside."""
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWIPC | sc.CLONE_NEWUTS
    if user:
        flags |= sc.CLONE_NEWUSER
    if not share_net:
        flags |= sc.CLONE_NEWNET
    return flags
