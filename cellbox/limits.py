"""Limits of one run, in SI units (seconds, bytes). Front ends convert their own units."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from cellbox.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
KIB, MIB = 1 << 10, 1 << 20
# Processes and threads at once that a command gets unless it asks otherwise, in the one-shot
# CLI (cellbox run) and the service: enough for a shell pipeline or a runtime's threads.
# isolate's grammar and the library keep isolate's 1.
COMMAND_PROCESSES = 64
# Bytes of a stream the keeper captures when the run has no output limit.
DEFAULT_CAPTURE = 64 * MIB


def parse_size(text: str, default_unit: str = "") -> int:
    """'256M', '1G', '512k', '1048576' -> bytes (a bare number is in ``default_unit``)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"Cannot read size {text!r}; use a number with an optional unit "
                         "(K, M, G), e.g. 256M")
    number, unit = float(m.group(1)), (m.group(2) or default_unit).lower()
    return int(number * _UNITS[unit])


@dataclass(frozen=True)
class Limits:
    """What a run may use. ``None`` means no limit.

    time / wall_time / extra_time: seconds. CPU time counts every process and thread;
    extra_time delays the kill for the CPU limit only (as in isolate).
    memory: bytes for the whole run (cgroup, swap off); address_space: bytes per process.
    processes: processes and threads at once (``None``: unlimited).
    """

    time: float | None = None
    wall_time: float | None = None
    extra_time: float = 0.0
    memory: int | None = None
    address_space: int | None = None
    stack: int | None = None
    open_files: int | None = 64
    file_size: int | None = None
    core: int = 0
    processes: int | None = 1
    output: int | None = None  # bytes each of captured stdout/stderr keep (library capture)

    def __post_init__(self) -> None:
        for name in ("time", "wall_time", "extra_time"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise UsageError(f"Limit {name}={v!r} must be a non-negative number of seconds")
        for name in ("memory", "address_space", "stack", "file_size", "core", "output"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise UsageError(f"Limit {name}={v!r} must be a non-negative number of bytes")
        if self.open_files is not None and self.open_files < 4:
            raise UsageError(f"open_files={self.open_files} is too small: the program needs "
                             "at least 4 (stdin, stdout, stderr and one more)")
        if self.processes is not None and self.processes < 1:
            raise UsageError(f"processes={self.processes} must be at least 1")

    def cpu_rlimit(self) -> int | None:
        """RLIMIT_CPU backstop in whole seconds, beyond the point where the keeper kills."""
        if self.time is None:
            return None
        return int(math.ceil(self.time + self.extra_time)) + 1


def wall_for(time: float) -> float:
    """The wall-clock limit of a judged run with ``time`` CPU seconds: a program that sleeps
    or blocks gets TLE, with room for a slow start."""
    return 2 * time + 1


@dataclass(frozen=True)
class Defaults:
    """What a front end gives a run for each limit its request leaves out: ``base``, and with
    ``wall_from_time`` a wall time of ``wall_for(time)`` when none is given."""

    base: Limits
    wall_from_time: bool = False

    def limits(self, **given: float | None) -> Limits:
        """These defaults with the limits ``given`` (a value of None is not given)."""
        chosen = {k: v for k, v in given.items() if v is not None}
        limits = replace(self.base, **chosen)  # type: ignore[arg-type]
        if self.wall_from_time and "wall_time" not in chosen and limits.time is not None:
            limits = replace(limits, wall_time=wall_for(limits.time))
        return limits


# The defaults of each front end, documented in docs/library.md ("Limits and their defaults").
# The library (Box, Pool) and isolate's command line: isolate's, nothing but 64 open files and
# one process.
LIBRARY = Defaults(Limits())
# cellbox run, the one-shot command: isolate's options, and room for a shell pipeline.
COMMAND = Defaults(Limits(processes=COMMAND_PROCESSES))
# The judge (cellbox.judge, cellbox judge): every run bounded in time, memory and output.
JUDGE = Defaults(Limits(time=1.0, memory=256 * MIB, output=64 * MIB, file_size=64 * MIB),
                 wall_from_time=True)
# The native HTTP API (/v1): as the judge, with the smaller outputs a JSON answer carries, and
# commands that may start a shell pipeline.
SERVICE = Defaults(Limits(time=1.0, memory=256 * MIB, output=1 * MIB, file_size=16 * MIB,
                          processes=COMMAND_PROCESSES), wall_from_time=True)
# The Judge0-compatible API: Judge0's own defaults (its judge0.conf), outputs as the service.
JUDGE0 = Defaults(Limits(time=5.0, wall_time=10.0, memory=128000 * KIB, file_size=1024 * KIB,
                         processes=60, output=1 * MIB))
