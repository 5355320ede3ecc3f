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
from cellbox.limits import Limits
from cellbox.result import RunResult

MIB = 1 << 20
INPUT_FILE = "input.txt"  # each test's input is also here, besides stdin


@dataclass(frozen=True)
class JudgeLimits:
    """Limits of each run of the program. ``wall_time`` None: 2 x time + 1 s (a program that
    sleeps or blocks gets TLE, with room for a slow start). memory covers every process of
    the run (see docs/languages.md for runtimes with a heap of their own)."""

    time: float = 1.0
    wall_time: float | None = None
    memory: int = 256 * MIB
    output: int = 64 * MIB  # bytes of stdout (and of stderr) before OLE
    file_size: int = 64 * MIB  # largest file the program may write (else OLE)

    def __post_init__(self) -> None:
        self.limits()  # Limits checks the values

    def limits(self) -> Limits:
        wall = self.wall_time if self.wall_time is not None else 2 * self.time + 1
        if self.time <= 0 or wall <= 0 or self.memory <= 0:
            raise UsageError("time, wall time and memory must be positive")
        return Limits(time=self.time, wall_time=wall, memory=self.memory, output=self.output,
                      file_size=self.file_size)


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
    limits: JudgeLimits
    tests: list[TestResult] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """CE (or IE) if it did not compile, else the first failing test's verdict, else AC."""
        if self.compilation.verdict is not None:
            return self.compilation.verdict
        return next((t.verdict for t in self.tests if t.verdict is not Verdict.AC), Verdict.AC)

    def to_dict(self) -> dict[str, object]:
        run_limits = self.limits.limits()
        return {"verdict": self.verdict.value, "language": self.language,
                "limits": {"time": run_limits.time, "wall_time": run_limits.wall_time,
                           "memory": run_limits.memory, "output": run_limits.output,
                           "file_size": run_limits.file_size},
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
                    limits: JudgeLimits | None = None, files: Mapping[str, bytes] = {},
                    share_net: bool = False, args: Sequence[str] = (),
                    options: Sequence[str] = (), stderr_to_stdout: bool = False,
                    runs: int = 1, compile_caps: Limits | None = None,
                    pools: PoolFor | None = None) -> ExecResult:
    """``files``: more files in the compiler's box and the run's; ``share_net``: the run
    gets the host's network (the service allows it only when its admin does); ``args``: the
    program's command-line arguments; ``options``: compiler options (profiles with
    compiler_options only); ``runs``: run that many times, each in a fresh box, stopping at
    the first run that does not end well (Judge0's number_of_runs); ``compile_caps``: limits
    the compile step may not exceed (a service's admin caps); ``pools``: warm boxes for the
    compile step, and for the runs unless they share the network or merge stderr."""
    compilation = compile_source(lang, source, lang.compile_limits(compile_caps), files,
                                 options, pools)
    run_pools = None if share_net or stderr_to_stdout else pools
    if compilation.verdict is not None:
        return ExecResult(compilation, None, compilation.verdict)
    done: list[RunResult] = []
    verdict = None
    while len(done) < runs and verdict is None:
        done.append(run_compiled(compilation, (limits or JudgeLimits()).limits(), stdin,
                                 {**files, INPUT_FILE: stdin}, args, share_net,
                                 stderr_to_stdout, run_pools))
        verdict = run_verdict(done[-1], lang)
    return ExecResult(compilation, done[-1], verdict or Verdict.AC, tuple(done))


def judge(lang: Language, source: bytes, tests: list[TestCase],
          limits: JudgeLimits | None = None, checker: Checker | None = None,
          fail_fast: bool = False,
          on_test: Callable[[TestResult], None] | None = None) -> JudgeReport:
    """Compile ``source`` and run it on every test in order; ``fail_fast`` stops at the first
    test that is not AC; ``on_test`` is called after each test (a progress display)."""
    limits = limits or JudgeLimits()
    report = JudgeReport(lang.name, compile_source(lang, source), limits)
    if not report.compilation.ok:
        return report
    run_limits = limits.limits()
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
