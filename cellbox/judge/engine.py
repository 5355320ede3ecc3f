"""Judging: compile once, run every test in a fresh box, check the output, give verdicts.

The program's output is captured by the host and the answer is read by the host before any
run, so nothing the program does in its box (overwriting or unlinking ``input.txt``, planting
files) reaches the checker or the next test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cellbox.errors import UsageError
from cellbox.judge.checkers import Checker, TokensChecker
from cellbox.judge.sandbox import Compilation, PoolFor, compile_source, run_compiled
from cellbox.judge.testset import TestCase
from cellbox.judge.verdict import Verdict, run_verdict
from cellbox.languages import Language
from cellbox.limits import JUDGE, Limits
from cellbox.result import RunResult

INPUT_FILE = "input.txt"  # each test's input is also here, besides stdin


def judging_limits(limits: Limits | None) -> Limits:
    """The limits of each run of a judged program: ``limits``, or ``JUDGE``'s defaults. A
    judge needs them all bounded (a program that sleeps or allocates must end with a
    verdict)."""
    limits = limits if limits is not None else JUDGE.limits()
    for name in ("time", "wall_time", "memory", "output"):
        value = getattr(limits, name)
        if not value:
            raise UsageError(f"Judging needs a {name} limit more than zero, not {value!r}: "
                             "cellbox.limits.JUDGE.limits(time=..., memory=...) fills in the "
                             "judge's defaults")
    return limits


@dataclass
class TestResult:
    name: str
    verdict: Verdict
    time: float = 0.0  # CPU seconds
    wall_time: float = 0.0
    memory: int | None = None  # peak bytes (cgroup)
    exit_code: int | None = None
    signal: int | None = None
    message: str = ""  # why the verdict (the run's status message or the checker's)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "verdict": self.verdict.value, "time": round(self.time, 3),
                "wall_time": round(self.wall_time, 3), "memory": self.memory,
                "exit_code": self.exit_code, "signal": self.signal, "message": self.message}


@dataclass
class JudgeReport:
    language: str
    compilation: Compilation
    limits: Limits
    tests: list[TestResult] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """CE (or IE) if it did not compile, else the first failing test's verdict, else AC."""
        if self.compilation.verdict is not None:
            return self.compilation.verdict
        return next((t.verdict for t in self.tests if t.verdict is not Verdict.AC), Verdict.AC)

    def to_dict(self) -> dict[str, object]:
        lim = self.limits
        return {"verdict": self.verdict.value, "language": self.language,
                "limits": {"time": lim.time, "wall_time": lim.wall_time, "memory": lim.memory,
                           "output": lim.output, "file_size": lim.file_size},
                "compile": self.compilation.to_dict(),
                "tests": [t.to_dict() for t in self.tests],
                "passed": sum(t.verdict is Verdict.AC for t in self.tests)}


@dataclass
class ExecResult:
    """One compile and its runs: ``run`` (the last of ``runs``) is None when compilation
    failed."""

    compilation: Compilation
    run: RunResult | None
    verdict: Verdict  # CE, the last run's own verdict, or AC when every run ended well
    runs: tuple[RunResult, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict.value, "compile": self.compilation.to_dict(),
                "run": self.run.to_dict() if self.run else None}


def compile_and_run(lang: Language, source: bytes, stdin: bytes = b"",
                    limits: Limits | None = None, files: Mapping[str, bytes] = {},
                    share_net: bool = False, args: Sequence[str] = (),
                    options: Sequence[str] = (), stderr_to_stdout: bool = False,
                    runs: int = 1, compile_caps: Limits | None = None,
                    pools: PoolFor | None = None) -> ExecResult:
    """``files``: more files in the compiler's box and the run's; ``share_net``: the run
    gets the host's network (the service allows it only when its admin does); ``args``: the
    program's command-line arguments; ``options``: compiler options (profiles with
    compiler_options only); ``runs``: run that many times, each in a fresh box, stopping at
    the first run that does not end well (Judge0's number_of_runs); ``compile_caps``: limits
    the compile step may not exceed (a service's admin caps); ``limits``: each run's (see
    ``judging_limits``); ``pools``: warm boxes for the compile step, and for the runs unless
    they share the network or merge stderr."""
    run_limits = judging_limits(limits)
    compilation = compile_source(lang, source, lang.compile_limits(compile_caps), files,
                                 options, pools)
    run_pools = None if share_net or stderr_to_stdout else pools
    if compilation.verdict is not None:
        return ExecResult(compilation, None, compilation.verdict)
    done: list[RunResult] = []
    verdict = None
    while len(done) < runs and verdict is None:
        done.append(run_compiled(compilation, run_limits, stdin,
                                 {**files, INPUT_FILE: stdin}, args, share_net,
                                 stderr_to_stdout, run_pools))
        verdict = run_verdict(done[-1], lang)
    return ExecResult(compilation, done[-1], verdict or Verdict.AC, tuple(done))


def judge(lang: Language, source: bytes, tests: list[TestCase],
          limits: Limits | None = None, checker: Checker | None = None,
          fail_fast: bool = False,
          on_test: Callable[[TestResult], None] | None = None) -> JudgeReport:
    """Compile ``source`` and run it on every test in order; ``fail_fast`` stops at the first
    test that is not AC; ``on_test`` is called after each test (a progress display);
    ``limits``: each run's (see ``judging_limits``)."""
    run_limits = judging_limits(limits)
    report = JudgeReport(lang.name, compile_source(lang, source), run_limits)
    if not report.compilation.ok:
        return report
    checker = checker or TokensChecker()
    for test in tests:
        result = judge_one(report.compilation, test, run_limits, checker)
        report.tests.append(result)
        if on_test is not None:
            on_test(result)
        if fail_fast and result.verdict is not Verdict.AC:
            break
    return report


def judge_one(compilation: Compilation, test: TestCase, limits: Limits,
              checker: Checker) -> TestResult:
    run = run_compiled(compilation, limits, test.input, {INPUT_FILE: test.input})
    result = TestResult(test.name, Verdict.AC, run.cpu_time, run.wall_time, run.peak_memory,
                        run.exit_code, run.signal, run.message)
    verdict = run_verdict(run, compilation.language)
    if verdict is not None:
        result.verdict = verdict
        return result
    check = checker.check(test.input, run.stdout, test.answer)
    result.verdict, result.message = check.verdict, check.message
    return result
