"""cgroups: one interface, with a backend per cgroup version, picked at start.

A backend places each box in cgroups of its own, which cellbox creates and removes itself,
and starts every counter of a run from zero: v2 gives every run a fresh leaf; v1 keeps a
box's cpuacct and pids cgroups (counters reset or taken as offsets) and makes its memory
cgroup again for every run. The keeper talks only to ``BoxCgroup``.
"""

from __future__ import annotations

from typing import Protocol

from cellbox.cgroup.run import CgroupStats, Join
from cellbox.errors import SandboxSetupError


class BoxCgroup(Protocol):
    """The cgroup(s) of one box."""

    kills: bool  # kill_all kills (False: rootless without a cgroup; see none.py)

    def start_run(self, memory: int | None, pids: int | None) -> Join:
        """Set this run's limits and start its counters from zero; return how the program
        joins (the fds stay open until ``end_run``)."""
        ...
    def exists(self) -> bool: ...
    def cpu_ns(self) -> int: ...
    def stats(self) -> CgroupStats: ...
    def pids(self) -> list[int]: ...
    def populated(self) -> bool:
        """Whether a run left any process (cheaper than ``pids``)."""
        ...
    def kill_all(self) -> None: ...
    def end_run(self) -> None: ...
    def close(self) -> None:
        """Release what the object keeps open between runs (after the last run)."""
        ...
    def remove(self) -> None: ...


class CgroupBackend(Protocol):
    version: int  # 0: none (rootless mode without a delegated cgroup)

    def describe(self) -> str:
        """Which hierarchy, where the boxes go, and why: for --print-cg-root."""
        ...
    def base_dirs(self) -> list[str]:
        """The directories holding the box cgroups (one per v1 controller; one on v2)."""
        ...
    def box(self, box_id: int, create: bool = True) -> BoxCgroup: ...
    def remove_root(self) -> None: ...


def detect_rootless(cg_root: str = "auto") -> CgroupBackend:
    """The backend for a user who is not root: a cgroup delegated to them (v2: the cgroup
    this process runs in, when they may write it, as systemd's ``Delegate=yes`` gives; v1:
    ``<controller>/cellbox/user-<uid>``, made by ``cellbox delegate``), else none."""
    from cellbox.cgroup import none, v1, v2

    mount = v2.find_mount()
    if mount and all(c in v2.controllers(mount) for c in v2.NEEDED):
        return v2.delegated_to_user(mount, cg_root) or none.NoCgroups(none.V2_ADVICE)
    v1_mounts = v1.find_mounts()
    if all(c in v1_mounts for c in v1.REQUIRED):
        return v1.delegated_to_user(v1_mounts, cg_root) or none.NoCgroups(none.V1_ADVICE)
    return none.NoCgroups("this machine has no usable cgroup hierarchy (see cellbox doctor)")


def detect(cg_root: str = "auto") -> CgroupBackend:
    """The backend for this machine: the hierarchy that has the controllers cellbox needs.

    Pure v2 (a cgroup2 mount with memory and pids) gives v2; v1 controllers mounted (memory,
    cpuacct, pids) give v1. On a hybrid machine a controller lives in one hierarchy
    only, so at most one of the two qualifies (typically v1, with a cgroup2 mount that has no
    controllers). Detection only reads; nothing is created until a box is.
    """
    from cellbox.cgroup import v1, v2

    mount = v2.find_mount()
    v2_ctrls = v2.controllers(mount) if mount else set()
    v1_mounts = v1.find_mounts()
    layout = ("hybrid" if mount and v1_mounts else "unified (v2 only)" if mount
              else "v1 only" if v1_mounts else "no cgroups")
    found = "; ".join([
        layout,
        f"cgroup2 at {mount} with controllers {' '.join(sorted(v2_ctrls)) or '(none)'}"
        if mount else "no cgroup2 mount",
        f"cgroup v1 controllers {' '.join(sorted(v1_mounts)) or '(none)'}"])
    v2_missing = [c for c in v2.NEEDED if c not in v2_ctrls]
    if mount and not v2_missing:
        return v2.CgroupV2(mount, cg_root, f"{found}; cgroup2 has {' and '.join(v2.NEEDED)}")
    if all(c in v1_mounts for c in v1.REQUIRED):
        return v1.CgroupV1(v1_mounts, cg_root, f"{found}; cgroup2 lacks "
                           f"{' and '.join(v2_missing)}, the v1 controllers are all there")
    raise SandboxSetupError(
        f"No usable cgroup hierarchy (found: {found}). cellbox needs either cgroup v2 with the "
        f"{' and '.join(v2.NEEDED)} controllers available in the root cgroup, or the cgroup v1 "
        f"controllers {', '.join(v1.REQUIRED)} mounted under /sys/fs/cgroup.")
