"""A run's side of a box's cgroups, the same for every backend: how the run's program joins
them, and what they measured of the run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Join:
    """How a run's program enters the box's cgroups: ``into``, a cgroup v2 directory fd the
    box init forks it into (clone3 with CLONE_INTO_CGROUP: atomic, no RCU wait); ``tasks``,
    v1 files it writes b"0" (itself) to just before execve."""

    tasks: tuple[int, ...] = ()
    into: int | None = None


@dataclass(frozen=True)
class CgroupStats:
    cpu_ns: int | None  # CPU time of every process and thread since the run started
    peak_memory: int | None  # bytes; None (and cpu_ns None): no cgroup measured them
    oom_kills: int  # in this run
    pids_limit_hits: int  # forks refused by the pids limit, in this run
