"""Verdicts and how a run's status maps to one."""

from __future__ import annotations

from enum import Enum

from cellbox.languages import Language
from cellbox.result import RunResult, Status


class Verdict(Enum):
    AC = "AC"  # accepted
    WA = "WA"  # wrong answer (the checker's say)
    TLE = "TLE"  # CPU or wall-clock time limit
    MLE = "MLE"  # memory limit: the cgroup's OOM killer, or the runtime's own out-of-memory
    RE = "RE"  # non-zero exit or a fatal signal
    OLE = "OLE"  # output limit, or a file written past the file size limit
    CE = "CE"  # compilation failed or hit a compile limit
    IE = "IE"  # internal error: the sandbox or the checker failed


_STATUS = {
    Status.TIME_LIMIT: Verdict.TLE, Status.WALL_TIME_LIMIT: Verdict.TLE,
    Status.MEMORY_LIMIT: Verdict.MLE, Status.OUTPUT_LIMIT: Verdict.OLE,
    Status.FILE_SIZE_LIMIT: Verdict.OLE, Status.RUNTIME_ERROR: Verdict.RE,
    Status.SIGNALED: Verdict.RE, Status.INTERNAL_ERROR: Verdict.IE,
    Status.EXEC_ERROR: Verdict.IE,  # the judge's command (a toolchain) could not start
}


def run_verdict(result: RunResult, lang: Language | None = None) -> Verdict | None:
    """The verdict a run earned by itself, or None when it ended well and its output decides.

    A run that failed after its cgroup's OOM killer struck, or whose stderr carries the
    runtime's out-of-memory message (a JVM OutOfMemoryError, V8's heap limit), is MLE; but
    not when the process limit was hit, since the JVM reports a thread it could not start as
    an OutOfMemoryError too. ``lang`` None: a plain command, with no runtime markers."""
    if result.status is Status.OK:
        return None
    verdict = _STATUS[result.status]
    if verdict is Verdict.RE:
        if result.oom_killed:
            return Verdict.MLE
        text = result.stderr.decode("utf-8", "replace")
        markers = lang.oom_markers if lang is not None else ()
        if not result.processes_limit_hit and any(m in text for m in markers):
            return Verdict.MLE
    return verdict
