"""verify-problem: judge every submission of a package and check it against its folder.

Folders (problemtools' and DOMjudge's): accepted (AC, and full score on a scoring problem),
partially_accepted (AC below full score), wrong_answer (WA), time_limit_exceeded (TLE),
run_time_error (RE, or MLE: problemtools counts a memory kill as a run-time error),
memory_limit_exceeded (MLE or RE), output_limit_exceeded (OLE), compile_error (CE), rejected
(anything but AC). Accepted submissions go first: without a fixed time limit, the limit is
``ac_to_time_limit`` times the slowest of them, and every other submission runs with the
limit times ``time_limit_to_tle``; a verdict that matches at either limit is a match. A
submission that cannot be judged here (another folder, such as ``slow_accepted``, which
problemtools ignores too; a language without a profile or a toolchain) is listed as skipped,
with the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from cellbox.errors import UsageError
from cellbox.judge.package import CaseResult, Judgement, PackageJudge, ProblemReport
from cellbox.judge.problem import Problem
from cellbox.judge.program import Program, load_program
from cellbox.judge.sandbox import require_toolchain
from cellbox.judge.verdict import Verdict

FOLDERS: dict[str, frozenset[Verdict]] = {
    "accepted": frozenset({Verdict.AC}),
    "partially_accepted": frozenset({Verdict.AC}),
    "wrong_answer": frozenset({Verdict.WA}),
    "time_limit_exceeded": frozenset({Verdict.TLE}),
    "run_time_error": frozenset({Verdict.RE, Verdict.MLE}),
    "memory_limit_exceeded": frozenset({Verdict.MLE, Verdict.RE}),
    "output_limit_exceeded": frozenset({Verdict.OLE}),
    "compile_error": frozenset({Verdict.CE}),
    "rejected": frozenset(set(Verdict) - {Verdict.AC, Verdict.IE}),
}
UNKNOWN_LIMIT_CAP = 60.0  # CPU seconds of an accepted run while the time limit is not known


@dataclass
class Check:
    folder: str
    name: str
    language: str
    verdict: str  # what it got (at the time limit), or "skipped"
    score: float | None
    matched: bool | None  # None: skipped
    seconds: float  # judging time, wall
    note: str = ""
    report: ProblemReport | None = None

    def to_dict(self) -> dict[str, object]:
        return {"folder": self.folder, "submission": self.name, "language": self.language,
                "verdict": self.verdict, "score": self.score, "matched": self.matched,
                "seconds": round(self.seconds, 3), "note": self.note,
                "result": self.report.to_dict() if self.report else None}


def submissions(problem: Problem) -> list[tuple[str, str]]:
    """(folder, path) of every submission, accepted first, each folder in name order; the
    folders that state no verdict cellbox knows (``slow_accepted``) last."""
    root = os.path.join(problem.path, "submissions")
    others = sorted(n for n in os.listdir(root) if n not in FOLDERS and not n.startswith(".")
                    ) if os.path.isdir(root) else []
    found = []
    for folder in sorted(FOLDERS, key=lambda f: f != "accepted") + others:
        path = os.path.join(root, folder)
        if os.path.isdir(path):
            found += [(folder, os.path.join(path, n)) for n in sorted(os.listdir(path))
                      if not n.startswith(".")]
    return found


def full_score(problem: Problem, report: ProblemReport) -> bool:
    if not problem.scoring:
        return True
    return report.score == problem.data.score_range()[1]


def verify(problem: Problem, on_done: Callable[[Check], None] | None = None,
           on_test: Callable[[CaseResult], None] | None = None) -> tuple[float, list[Check]]:
    """The time limit used and a Check per submission, in the order of ``submissions``."""
    limits = problem.limits
    time_limit = limits.time_limit
    checks: list[Check] = []
    with PackageJudge(problem) as judge:
        pending: list[tuple[str, str, Program | None, Judgement | None, float, str]] = []
        for folder, path in submissions(problem):
            start = time.monotonic()
            program = _submission(path) if folder in FOLDERS else (
                f"the folder {folder} states no verdict to check (known: {', '.join(FOLDERS)})")
            if isinstance(program, str):
                pending.append((folder, path, None, None, 0.0, program))
                continue
            judgement = None
            if folder == "accepted" or time_limit is not None:
                cap = time_limit * limits.time_limit_to_tle if time_limit else UNKNOWN_LIMIT_CAP
                judgement = judge.judge(program, cap, cap, on_test)
            pending.append((folder, path, program, judgement, time.monotonic() - start, ""))
        if time_limit is None:
            slowest = max((j.report(UNKNOWN_LIMIT_CAP).time for f, _, _, j, _, _ in pending
                           if f == "accepted" and j is not None), default=0.0)
            time_limit = limits.derived_time_limit(slowest)
        high = time_limit * limits.time_limit_to_tle
        for folder, path, built, judgement, spent, skipped in pending:
            if built is None:
                check = Check(folder, os.path.basename(path), "-", "skipped", None, None, 0.0,
                              skipped)
            else:
                start = time.monotonic()
                if judgement is None:
                    judgement = judge.judge(built, time_limit, high, on_test)
                check = _check(problem, folder, built.name, judgement.report(time_limit),
                               judgement.report(high))
                check.seconds = spent + time.monotonic() - start
            checks.append(check)
            if on_done is not None:
                on_done(check)
    return time_limit, checks


def _submission(path: str) -> Program | str:
    """The submission, or why it cannot be judged here (a language cellbox has no profile
    for or whose toolchain this machine lacks, no main file among several, ...): one such
    submission is reported as skipped and does not stop the package."""
    try:
        program = load_program(path)
        require_toolchain(program.language)
    except UsageError as e:
        return str(e)
    return program


def _check(problem: Problem, folder: str, name: str, low: ProblemReport,
           high: ProblemReport) -> Check:
    def fits(r: ProblemReport) -> bool:
        if r.verdict not in FOLDERS[folder]:
            return False
        if folder == "accepted":
            return full_score(problem, r)
        if folder == "partially_accepted":
            return not full_score(problem, r)
        return True

    matched = fits(low) or fits(high)
    note = "" if fits(low) or not matched else "matched with the safety margin's extra time"
    outside = low.result.outside() if low.result else []
    if outside:
        note = f"score outside the range of {', '.join(outside)}; {note}".rstrip("; ")
    if not matched:
        note = low.compilation.message[:200] if low.verdict is Verdict.CE else next(
            (c.message for c, _ in (low.result.cases() if low.result else [])
             if c.message), "")
    return Check(folder, name, low.language, low.verdict.value, low.score, matched, 0.0,
                 note, low)
