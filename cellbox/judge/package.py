"""Judging a program against a problem package, on warm boxes.

The program is built once; each test runs in the submission's warm box (``cellbox.Pool``:
emptied, the artifacts and nothing else copied in) and a custom validator in a warm box of its
own. A run's verdict is kept with its CPU time, so one set of runs (at the high limit) gives
the verdict at any lower time limit too; groups are graded from the tests' verdicts as the
format's default grader does (``docs/problems.md``).

Interactive problems: the submission and the validator run at once, joined by pipes
(``cellbox.interactive``). The validator's failure wins (IE), then its rejection if it ended
first (WA: whatever the submission did after), then the submission's own failure (TLE,
including waiting past its wall-time limit; RE, MLE, OLE), then the validator's verdict.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from cellbox.errors import UsageError
from cellbox.interactive import ended_first, run_interactive
from cellbox.judge.problem import Problem, ProblemTest, TestGroup
from cellbox.judge.program import Program, load_program
from cellbox.judge.sandbox import RUN_DIRS, Compilation, compile_source, run_environment
from cellbox.judge.validators import (
    DefaultValidator,
    Validation,
    feedback_of,
    interactive_verdict,
    outcome,
    prepare_validator,
    validator_limits,
)
from cellbox.judge.verdict import Verdict, run_verdict
from cellbox.languages import Language
from cellbox.limits import Limits
from cellbox.pool import Pool, WarmRun, run_warm
from cellbox.result import RunResult

WORST_FIRST = (Verdict.IE, Verdict.RE, Verdict.MLE, Verdict.TLE, Verdict.OLE, Verdict.WA,
               Verdict.AC)
SCORES: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "avg": lambda s: sum(s) / len(s), "max": max, "min": min}


@dataclass
class CaseResult:
    """One test: its runs' outcome at the limit they ran with (``verdict``), from which the
    verdict at any lower limit follows (``at``)."""

    name: str
    verdict: Verdict
    time: float = 0.0  # CPU seconds, the slowest pass
    wall_time: float = 0.0
    memory: int | None = None
    message: str = ""
    validation: Validation | None = None
    validator_decided: bool = False  # a validator failure, or an interactive WA it gave first
    score: float | None = None  # from the validator
    passes: int = 1

    def at(self, time_limit: float) -> Verdict:
        if (self.time > time_limit and not self.validator_decided
                and self.verdict is not Verdict.IE):
            return Verdict.TLE
        return self.verdict

    def to_dict(self, time_limit: float, score: float | None) -> dict[str, object]:
        v = self.validation
        return {"name": self.name, "verdict": self.at(time_limit).value, "score": score,
                "time": round(self.time, 3), "wall_time": round(self.wall_time, 3),
                "memory": self.memory, "message": self.message, "passes": self.passes,
                "judge_message": v.judge_message if v else "",
                "team_message": v.team_message if v else ""}


@dataclass
class GroupResult:
    name: str
    verdict: Verdict
    score: float | None
    items: list[GroupResult | tuple[CaseResult, float | None]] = field(default_factory=list)
    out_of_range: bool = False  # a scoring problem's group score outside its range

    def outside(self) -> list[str]:
        """The groups (this one and below) whose score is outside their range."""
        return [self.name] * self.out_of_range + [n for i in self.items
                                                  if isinstance(i, GroupResult)
                                                  for n in i.outside()]

    def to_dict(self, time_limit: float) -> dict[str, object]:
        return {"name": self.name, "verdict": self.verdict.value, "score": self.score,
                "out_of_range": self.out_of_range,
                "groups": [i.to_dict(time_limit) for i in self.items
                           if isinstance(i, GroupResult)],
                "tests": [i[0].to_dict(time_limit, i[1]) for i in self.items
                          if not isinstance(i, GroupResult)]}

    def cases(self) -> list[tuple[CaseResult, float | None]]:
        return [c for i in self.items
                for c in (i.cases() if isinstance(i, GroupResult) else [i])]


@dataclass
class ProblemReport:
    program: str
    language: str
    compilation: Compilation
    time_limit: float
    result: GroupResult | None  # None when it did not compile

    @property
    def verdict(self) -> Verdict:
        if self.compilation.verdict is not None:
            return self.compilation.verdict
        assert self.result is not None
        return self.result.verdict

    @property
    def score(self) -> float | None:
        return self.result.score if self.result else None

    @property
    def time(self) -> float:
        """CPU seconds of the slowest test run."""
        return max((c.time for c, _ in self.result.cases()), default=0.0) if self.result else 0.0

    def to_dict(self) -> dict[str, object]:
        tests = self.result.cases() if self.result else []
        return {"verdict": self.verdict.value, "score": self.score, "program": self.program,
                "language": self.language, "time_limit": self.time_limit,
                "compile": self.compilation.to_dict(),
                "groups": self.result.to_dict(self.time_limit) if self.result else None,
                "tests": [c.to_dict(self.time_limit, s) for c, s in tests],
                "passed": sum(c.at(self.time_limit) is Verdict.AC for c, _ in tests)}


class PackageJudge:
    """Judges programs against one package; a context manager holding the warm boxes."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self._stack = contextlib.ExitStack()
        self._pools: dict[tuple[bool, tuple[str, ...]], Pool] = {}
        self._validator: Compilation | None = None
        self._defaults: dict[tuple[str, ...], DefaultValidator] = {}

    def __enter__(self) -> PackageJudge:
        if self.problem.validator is not None:
            lim = self.problem.limits
            program = load_program(self.problem.validator)
            limits = Limits(time=lim.compilation_time, wall_time=2 * lim.compilation_time + 5,
                            memory=lim.compilation_memory, processes=64,
                            output=64 << 10, file_size=256 << 20)
            compilation = compile_source(program.language, program.source, limits,
                                         program.others())
            if not compilation.ok:
                raise UsageError(f"The output validator of {self.problem.path} does not "
                                 f"compile:\n{compilation.message}")
            self._validator = compilation
        for test in self.problem.tests():  # a bad flag is the package's error: say so now
            self._default(test)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._pools.clear()

    def _pool(self, compilation: Compilation) -> Pool:
        """A warm box for the submission, another for the validator (an interactive run
        needs both at once), each with its language's root."""
        key = (compilation is self._validator, compilation.language.dirs + RUN_DIRS)
        if key not in self._pools:
            self._pools[key] = self._stack.enter_context(Pool(1, dirs=key[1]))
        return self._pools[key]

    def _default(self, test: ProblemTest) -> DefaultValidator:
        if test.flags not in self._defaults:
            self._defaults[test.flags] = DefaultValidator(test.flags)
        return self._defaults[test.flags]

    def build(self, program: Program) -> Compilation:
        lim = self.problem.limits
        limits = dataclasses.replace(program.language.compile_limits(),
                                     time=lim.compilation_time,
                                     wall_time=2 * lim.compilation_time + 5)
        return compile_source(program.language, program.source, limits, program.others())

    def judge(self, program: Program, time_limit: float, run_limit: float | None = None,
              on_test: Callable[[CaseResult], None] | None = None) -> Judgement:
        """Build ``program`` and ready it for grading: tests run (once, with ``run_limit``
        of CPU time, default ``time_limit``) as the grading asks for them."""
        return Judgement(self, program, self.build(program), run_limit or time_limit,
                         on_test)

    def run_case(self, compilation: Compilation, test: ProblemTest,
                 cpu_limit: float) -> CaseResult:
        lim = self.problem.limits
        # The wall-clock limit is a safety net (TLE for a program that waits), roomy enough
        # that a busy machine does not turn a slow start into one
        limits = Limits(time=cpu_limit, wall_time=3 * cpu_limit + 2, memory=lim.memory,
                        output=lim.output, file_size=lim.output)
        with open(test.input, "rb") as f:
            data = f.read()
        with open(test.answer, "rb") as f:
            answer = f.read()
        case = CaseResult(test.name, Verdict.AC, passes=0)
        feedback: dict[str, bytes] = {}
        for _ in range(lim.validation_passes if self.problem.multi_pass else 1):
            case.passes += 1
            validation = self._pass(compilation, test, limits, data, answer, feedback, case)
            if validation is None or validation.verdict is not Verdict.AC:
                return case
            if validation.nextpass is None:
                return case
            data = validation.nextpass
            feedback = {n: d for n, d in validation.feedback.items() if n != "nextpass.in"}
        case.verdict, case.validator_decided = Verdict.IE, True
        case.message = (f"the validator asked for more than {lim.validation_passes} passes "
                        "(limits.validation_passes)")
        return case

    def _pass(self, compilation: Compilation, test: ProblemTest, limits: Limits, data: bytes,
              answer: bytes, feedback: dict[str, bytes], case: CaseResult) -> Validation | None:
        """One run (a pass), its result merged into ``case``; the validation if it got one."""
        lang = compilation.language
        run_limits = lang.run_limits(limits)
        sub = self._pool(compilation).prepare(lang.run_argv(run_limits), run_limits,
                                              stdin=data, env=run_environment(lang, run_limits))
        compilation.copy_into(sub.box)
        if self.problem.interactive:
            val = self._validator_run(test, data, answer, feedback, None, limits.wall_time)
            run, vrun = run_interactive(sub, val)
            validation = self._validation(val, vrun)
            self._merge(case, run, lang)
            own = None if case.verdict is Verdict.AC else case.verdict
            case.verdict, case.validator_decided = interactive_verdict(
                own, validation, ended_first(vrun, run))
            self._note(case, validation)
            return validation
        run = run_warm([sub])[0]
        self._merge(case, run, lang)
        if case.verdict is not Verdict.AC:
            return None
        if self._validator is None:
            validation = self._default(test).validate(run.stdout, answer)
        else:
            val = self._validator_run(test, data, answer, feedback, run.stdout, None)
            validation = self._validation(val, run_warm([val])[0])
        case.verdict = validation.verdict
        case.validator_decided = validation.verdict is Verdict.IE
        self._note(case, validation)
        return validation

    @staticmethod
    def _merge(case: CaseResult, run: RunResult, lang: Language) -> None:
        case.time = max(case.time, run.cpu_time)
        case.wall_time = max(case.wall_time, run.wall_time)
        case.memory = max(case.memory or 0, run.peak_memory or 0) or None
        verdict = run_verdict(run, lang)
        if verdict is not None and case.verdict is Verdict.AC:
            case.verdict, case.message = verdict, run.message

    @staticmethod
    def _note(case: CaseResult, validation: Validation) -> None:
        case.validation = validation
        case.score = validation.score
        if validation.message and (case.verdict is validation.verdict):
            case.message = validation.message

    def _validator_run(self, test: ProblemTest, data: bytes, answer: bytes,
                       feedback: dict[str, bytes], output: bytes | None,
                       submission_wall: float | None) -> WarmRun:
        assert self._validator is not None
        lim = self.problem.limits
        wall = None if submission_wall is None else submission_wall + lim.validation_time
        limits = validator_limits(lim.validation_time, lim.validation_memory,
                                  lim.validation_output, wall)
        return prepare_validator(self._pool(self._validator), self._validator, limits, data,
                                 answer, test.flags, output or b"", feedback)

    def _validation(self, run: WarmRun, result: RunResult) -> Validation:
        feedback = feedback_of(run.box, self.problem.limits.validation_output)
        return outcome(result, feedback, self.problem.custom_score, self.problem.multi_pass)


class Judgement:
    """A built program and its test runs, graded at any time limit up to the run limit."""

    def __init__(self, judge: PackageJudge, program: Program, compilation: Compilation,
                 run_limit: float, on_test: Callable[[CaseResult], None] | None) -> None:
        self.judge, self.program, self.compilation = judge, program, compilation
        self.run_limit, self.on_test = run_limit, on_test
        self._cases: dict[str, CaseResult] = {}

    def report(self, time_limit: float) -> ProblemReport:
        result = None
        if self.compilation.ok:
            result = self._group(self.judge.problem.data, time_limit)
        return ProblemReport(self.program.name, self.program.language.name,
                             self.compilation, time_limit, result)

    def _case(self, test: ProblemTest) -> CaseResult:
        if test.name not in self._cases:
            self._cases[test.name] = self.judge.run_case(self.compilation, test, self.run_limit)
            if self.on_test is not None:
                self.on_test(self._cases[test.name])
        return self._cases[test.name]

    def _group(self, group: TestGroup, time_limit: float) -> GroupResult:
        config = group.config
        result = GroupResult(group.name, Verdict.AC, None)
        children: list[tuple[Verdict, float, bool]] = []  # (verdict, score, sample)
        for item in group.items:
            if isinstance(item, TestGroup):
                if not item.tests():
                    continue
                sub = self._group(item, time_limit)
                result.items.append(sub)
                verdict, score = sub.verdict, sub.score or 0.0
            else:
                case = self._case(item)
                verdict = case.at(time_limit)
                score = _case_score(case, verdict, config, item.sample)
                result.items.append((case, score if self.judge.problem.scoring else None))
            children.append((verdict, score, False))
            if verdict is not Verdict.AC and config["on_reject"] == "break":
                break
        result.verdict, score = _grade([(v, s) for v, s, _ in children],
                                       str(config["grader_flags"] or "").split(), group.name)
        if self.judge.problem.scoring:
            low, high = group.score_range()
            result.score, result.out_of_range = score, not low <= score <= high
        return result


def _case_score(case: CaseResult, verdict: Verdict, config: dict[str, object],
                sample: bool) -> float:
    """The validator's score.txt, else the group's accept or reject score; a sample's
    score.txt is ignored (the format says so)."""
    if verdict is not Verdict.AC:
        return float(config["reject_score"])  # type: ignore[arg-type]
    if case.score is not None and not sample:
        return case.score
    return float(config["accept_score"])  # type: ignore[arg-type]


def _grade(children: list[tuple[Verdict, float]], flags: list[str],
           where: str) -> tuple[Verdict, float]:
    """The format's default grader: a group's verdict and score from its children's."""
    if not children:
        return Verdict.AC, 0.0
    verdicts_by, scores_by, ignore_sample, any_accepted = "worst_error", "sum", False, False
    for flag in flags:
        if flag in ("worst_error", "no_errors", "first_error", "always_accept"):
            verdicts_by = flag
        elif flag in SCORES:
            scores_by = flag
        elif flag == "ignore_sample":
            ignore_sample = True
        elif flag == "accept_if_any_accepted":
            any_accepted = True
        else:
            raise UsageError(f"{where}: unknown grader flag {flag!r}")
    if ignore_sample:
        children = children[-1:]
    verdicts = [v for v, _ in children]
    score = SCORES[scores_by]([s for _, s in children])
    if any_accepted and Verdict.AC in verdicts:
        return Verdict.AC, score
    if verdicts_by == "always_accept":
        return Verdict.AC, score
    if verdicts_by == "first_error":
        return next((v for v in verdicts if v is not Verdict.AC), Verdict.AC), score
    return min(verdicts, key=WORST_FIRST.index), score
