"""Process privileges on the Python side: init's parent-death signal, and in rootless mode the
capabilities init carries across the execve of the C init.

The privilege drop itself (capabilities, uid and gid, no_new_privs, seccomp) happens in the C
init's program child, just before execve (``cellbox/spawn/init.c``).
"""

from __future__ import annotations

import signal

from cellbox.linux import syscalls as sc

PR_SET_PDEATHSIG = 1
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2


def _last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
        return int(f.read())


LAST_CAP = _last_cap()


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
