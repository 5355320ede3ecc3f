"""cgroups: one interface, with a backend per cgroup version, picked at start.

A backend places each box in its own cgroup, which cellbox creates and removes itself and
reuses from run to run. The keeper (one run) talks only to ``BoxCgroup``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cellbox.errors import SandboxSetupError


@dataclass(frozen=True)
class CgroupStats:
    cpu_ns: int  # CPU time of every process and thread since the run started
    peak_memory: int  # bytes
    oom_kills: int  # in this run
    pids_limit_hits: int  # forks refused by the pids limit, in this run


class BoxCgroup(Protocol):
    """The cgroup(s) of one box."""

    def start_run(self, memory: int | None, pids: int | None) -> list[int]:
        """Set this run's limits and start its counters from zero; return the fds the
        program writes b'0' to, to join."""
        ...
    def exists(self) -> bool: ...
    def cpu_ns(self) -> int: ...
    def stats(self) -> CgroupStats: ...
    def pids(self) -> list[int]: ...
    def kill_all(self) -> None: ...
    def end_run(self) -> None: ...
    def remove(self) -> None: ...


class CgroupBackend(Protocol):
    version: int

    def describe(self) -> str: ...
    def box(self, box_id: int, create: bool = True) -> BoxCgroup: ...
    def remove_root(self) -> None: ...


def detect(cg_root: str = "auto") -> CgroupBackend:
    """The backend for this machine: v1 where the v1 controllers cellbox needs are mounted."""
    from cellbox.cgroup import v1

    found = v1.find_mounts()
    if all(c in found for c in v1.REQUIRED):
        return v1.CgroupV1(found, cg_root)
    raise SandboxSetupError(
        "No usable cgroup hierarchy: cellbox needs the cgroup v1 controllers "
        f"{', '.join(v1.REQUIRED)} mounted (found: {', '.join(sorted(found)) or 'none'}). "
        "Mount them under /sys/fs/cgroup (the cgroup v2 backend is not available yet).")
