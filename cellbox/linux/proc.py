"""Processes as /proc shows them."""

from __future__ import annotations

RLIMITS = 16  # RLIMIT_CPU (0) to RLIMIT_RTTIME (15): the rows of /proc/PID/limits


def stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a live process, None if it is gone;
    the start time tells a process from a later one that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            after = f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return after[0], int(after[19])
