"""No cgroup: rootless mode when no cgroup was delegated to the user.

Nothing is limited, measured or killed here. The box layer refuses a run that asks for a
limit only a cgroup enforces (``unenforced``) unless the caller opted out, and then reports
in the result what a cgroup would have done and did not (docs/security.md, "Rootless mode").
"""

from __future__ import annotations

from cellbox.cgroup.run import CgroupStats, Join
from cellbox.limits import Limits

V2_ADVICE = ("this process runs in a cgroup it may not write: run cellbox in a delegated one, "
             "e.g. systemd-run --user --scope -p Delegate=yes cellbox ... (docs/cgroups.md)")
V1_ADVICE = ("no cgroup was delegated to this user: as root, run 'cellbox delegate --uid UID' "
             "(docs/cgroups.md)")
ACCOUNTING = "accounting"  # peak memory, CPU time of processes the program did not wait for


def unenforced(limits: Limits) -> list[str]:
    """The limits asked for that only a cgroup enforces (the names of docs/security.md).
    Processes are not among them: see ``nproc``."""
    asked = {"memory": limits.memory, "time": limits.time}
    return [name for name, value in asked.items() if value is not None]


def nproc(limits: Limits) -> int | None:
    """The RLIMIT_NPROC that stands in for the pids cgroup. The kernel counts the tasks of
    a uid in each user namespace, and a run with it puts its program in a user namespace of
    its own (the run plan's ``RUN_OWN_USERNS``), which holds the program's tasks alone: the
    program gets ``processes`` of them (threads count, as in pids.max). Unlike the cgroup it
    cannot count the refused forks (no processes-limit-hit)."""
    return limits.processes


class BoxNoCgroup:
    kills = False

    def start_run(self, memory: int | None, pids: int | None) -> Join:
        return Join()

    def exists(self) -> bool:
        return False

    def cpu_ns(self) -> int:
        return 0

    def stats(self) -> CgroupStats:
        return CgroupStats(cpu_ns=None, peak_memory=None, oom_kills=0, pids_limit_hits=0)

    def pids(self) -> list[int]:
        return []

    def populated(self) -> bool:
        return False

    def kill_all(self) -> None:
        pass  # the keeper kills init instead, and the pid namespace goes with it

    def end_run(self) -> None:
        pass

    def close(self) -> None:
        pass

    def remove(self) -> None:
        pass


class NoCgroups:
    version = 0

    def __init__(self, why: str) -> None:
        self.why = why

    def describe(self) -> str:
        return f"no cgroup (rootless mode): {self.why}"

    def base_dirs(self) -> list[str]:
        return []

    def box(self, box_id: int, create: bool = True) -> BoxNoCgroup:
        return BoxNoCgroup()

    def remove_root(self) -> None:
        pass
