"""Process privileges on the Python side: the parent-death signal of the CLI daemon's forked
workers.

The box's privilege drop (capabilities, uid and gid, no_new_privs, seccomp) happens in the
box init's program child, just before execve (``cellbox/boxinit/creds.c``).
"""

from __future__ import annotations

import signal

from cellbox.linux import syscalls as sc

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    sc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
