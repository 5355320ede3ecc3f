"""Compile and run sources in the sandbox, and judge them against test cases.

    from cellbox import judge
    from cellbox.languages import get
    from cellbox.limits import JUDGE

    report = judge.judge(get("cpp"), source, judge.load_tests("tests/"),
                         JUDGE.limits(time=1, memory=256 << 20))
    print(report.verdict, [t.verdict for t in report.tests])
"""

from cellbox.judge.checkers import (
    Check,
    Checker,
    ExactChecker,
    FloatChecker,
    ProgramChecker,
    TokensChecker,
)
from cellbox.judge.engine import (
    ExecResult,
    JudgeReport,
    TestResult,
    compile_and_run,
    judge,
    judging_limits,
)
from cellbox.judge.sandbox import (
    Artifact,
    Compilation,
    compile_source,
    require_toolchain,
    run_compiled,
    toolchain_version,
)
from cellbox.judge.testset import TestCase, load_tests
from cellbox.judge.verdict import Verdict, run_verdict

__all__ = [
    "Artifact", "Check", "Checker", "Compilation", "ExactChecker", "ExecResult", "FloatChecker",
    "JudgeReport", "ProgramChecker", "TestCase", "TestResult", "TokensChecker", "Verdict",
    "compile_and_run", "compile_source", "judge", "judging_limits", "load_tests",
    "require_toolchain", "run_compiled", "run_verdict", "toolchain_version",
]
