"""Interactive runs: two programs, each in a warm box of its own with its own limits and
accounting, the stdout of each the stdin of the other, through two pipes this process makes.

    from cellbox import Pool
    from cellbox.interactive import run_interactive

    with Pool(1) as subs, Pool(1) as vals:
        sub, val = run_interactive(subs.prepare(["./main"], limits),
                                   vals.prepare(["./validator", "in", "ans", "fb/"], vlimits))

Once both have started, this process closes its copies of the write ends, so each side sees
EOF as soon as the other one ends, whichever way it ends: an exit, a crash, or a kill at one
of its limits. It keeps the read ends until both have ended, so that neither side dies of
SIGPIPE (or sees EPIPE) for writing to one that has just ended: which of the two ends first
must not decide a verdict by a race (problemtools' interactive runner does the same). What
is written after the reader ended stays in the pipe; a side that writes more than a pipe
holds (64 KiB), or that waits for the other forever, ends at its own wall-time limit.
``RunResult.started_at`` + ``wall_time`` tells which side ended first.
"""

from __future__ import annotations

import os
from dataclasses import replace

from cellbox.pool import WarmRun, run_warm
from cellbox.result import RunResult


def run_interactive(first: WarmRun, second: WarmRun) -> tuple[RunResult, RunResult]:
    """Run both at once, connected: each one's stdout feeds the other's stdin. Their stderr
    is captured as usual (stdout, taken by the pipe, stays empty in the results)."""
    forth_r, forth_w = os.pipe2(os.O_CLOEXEC)  # first's stdout -> second's stdin
    back_r, back_w = os.pipe2(os.O_CLOEXEC)  # second's stdout -> first's stdin
    writers, readers = [forth_w, back_w], [forth_r, back_r]

    def close(fds: list[int]) -> None:
        while fds:
            os.close(fds.pop())

    a = replace(first, spec=replace(first.spec, stdin_fd=back_r, stdout_fd=forth_w,
                                    stdin_data=None))
    b = replace(second, spec=replace(second.spec, stdin_fd=forth_r, stdout_fd=back_w,
                                     stdin_data=None))
    try:
        results = run_warm([a, b], started=lambda: close(writers))
    finally:
        close(writers)
        close(readers)
    return results[0], results[1]


def ended_first(a: RunResult, b: RunResult) -> bool:
    """Whether ``a`` ended before ``b`` (both runs of one ``run_interactive``)."""
    if a.started_at is None or b.started_at is None:
        return a.wall_time < b.wall_time
    return a.started_at + a.wall_time < b.started_at + b.wall_time
