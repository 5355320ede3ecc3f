"""What a box's cgroups measured of one run (every backend gives the same)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CgroupStats:
    cpu_ns: int | None  # CPU time of every process and thread since the run started
    peak_memory: int | None  # bytes; None (and cpu_ns None): no cgroup measured them
    oom_kills: int  # in this run
    pids_limit_hits: int  # forks refused by the pids limit, in this run
