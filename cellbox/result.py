"""The outcome of a run: the Status enum, RunResult, and isolate's meta-file format."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum


class Status(Enum):
    OK = "OK"
    RUNTIME_ERROR = "RE"  # exited with a non-zero code
    EXEC_ERROR = "EXEC"  # the program could not be executed (isolate: RE, exit code 127)
    SIGNALED = "SG"  # died on a signal that no limit explains
    TIME_LIMIT = "TO"  # CPU time limit
    WALL_TIME_LIMIT = "TO-WALL"
    MEMORY_LIMIT = "ML"  # killed by the out-of-memory killer of its cgroup
    FILE_SIZE_LIMIT = "FSZ"  # SIGXFSZ: wrote past --fsize
    OUTPUT_LIMIT = "OL"  # captured output over Limits.output
    INTERNAL_ERROR = "XX"

    @property
    def isolate_code(self) -> str | None:
        """The status key isolate itself would print (old parsers know only these)."""
        return {
            Status.OK: None, Status.RUNTIME_ERROR: "RE", Status.EXEC_ERROR: "RE",
            Status.SIGNALED: "SG",
            Status.TIME_LIMIT: "TO", Status.WALL_TIME_LIMIT: "TO", Status.MEMORY_LIMIT: "SG",
            Status.FILE_SIZE_LIMIT: "SG", Status.OUTPUT_LIMIT: "SG", Status.INTERNAL_ERROR: "XX",
        }[self]

    @property
    def exceeded(self) -> str | None:
        """The limit that ended the run, for the meta key ``exceeded``."""
        return {
            Status.TIME_LIMIT: "time", Status.WALL_TIME_LIMIT: "wall-time",
            Status.MEMORY_LIMIT: "memory", Status.FILE_SIZE_LIMIT: "fsize",
            Status.OUTPUT_LIMIT: "output",
        }.get(self)


@dataclass
class RunResult:
    status: Status
    exit_code: int | None = None
    signal: int | None = None
    cpu_time: float = 0.0  # seconds, every process and thread of the run
    wall_time: float = 0.0
    peak_memory: int | None = None  # bytes, cgroup peak
    max_rss: int = 0  # bytes, largest process (rusage)
    csw_voluntary: int = 0
    csw_forced: int = 0
    oom_killed: bool = False
    killed: bool = False  # the sandbox ended it
    processes_limit_hit: bool = False
    message: str = ""
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    seccomp_weakened: list[str] = field(default_factory=list)  # syscalls the default denies
    # Rootless mode without a cgroup: the limits asked for that no cgroup enforced, and
    # "accounting" (docs/security.md, rootless mode)
    cgroup_weakened: list[str] = field(default_factory=list)
    # CLOCK_MONOTONIC when the program started (None if it never did): with wall_time, when
    # it ended, to order the ends of runs that went together
    started_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def meta(self) -> dict[str, str | int | float]:
        """isolate's meta keys, in isolate's units (KB, seconds), plus cellbox's extras."""
        m: dict[str, str | int | float] = {
            "time": round(self.cpu_time, 3),
            "time-wall": round(self.wall_time, 3),
            "max-rss": self.max_rss // 1024,
            "csw-voluntary": self.csw_voluntary,
            "csw-forced": self.csw_forced,
        }
        if self.peak_memory is not None:
            m["cg-mem"] = self.peak_memory // 1024
        if self.oom_killed:
            m["cg-oom-killed"] = 1
        if self.exit_code is not None:
            m["exitcode"] = self.exit_code
        if self.signal is not None:
            m["exitsig"] = self.signal
        if self.killed:
            m["killed"] = 1
        if self.status.isolate_code:
            m["status"] = self.status.isolate_code
        if self.message:
            m["message"] = self.message
        if self.status.exceeded:
            m["exceeded"] = self.status.exceeded
        if self.processes_limit_hit:
            m["processes-limit-hit"] = 1
        if self.seccomp_weakened:
            m["cellbox-seccomp-weakened"] = ",".join(self.seccomp_weakened)
        if self.cgroup_weakened:
            m["cellbox-cgroup-weakened"] = ",".join(self.cgroup_weakened)
        m["cellbox-status"] = self.status.name
        return m

    def meta_text(self) -> str:
        return "".join(f"{k}:{v}\n" for k, v in self.meta().items())

    def meta_json(self) -> str:
        return json.dumps(self.meta(), indent=2) + "\n"

    def to_dict(self, with_output: bool = True) -> dict[str, object]:
        d = asdict(self)
        d["status"] = self.status.name
        d["isolate_status"] = self.status.isolate_code
        for key in ("stdout", "stderr"):
            if with_output:
                d[key] = self.__dict__[key].decode("utf-8", "replace")
            else:
                del d[key]
        return d
