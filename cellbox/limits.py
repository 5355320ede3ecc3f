"""Limits of one run, in SI units (seconds, bytes). Front ends convert their own units."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cellbox.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
# Processes and threads at once that a command gets unless it asks otherwise, in the one-shot
# CLI (cellbox run) and the service: enough for a shell pipeline or a runtime's threads.
# isolate's grammar and the library keep isolate's 1.
COMMAND_PROCESSES = 64


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
