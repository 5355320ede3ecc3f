"""Process privileges on the Python side: init's parent-death signal.

The privilege drop itself (capabilities, uid and gid, no_new_privs, seccomp) happens in the C
init's program child, just before execve (``cellbox/spawn/init.c``).
"""

from __future__ import annotations

import signal

from cellbox.linux import syscalls as sc

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    sc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
