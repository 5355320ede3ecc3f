"""The benchmark's judging case: what judging a problem package adds per test, beyond the
program's own warm run.

A worker process (the keeper refuses threads, and the benchmark has some) writes a package of
TESTS tests (a C program adding two numbers, the default validator), builds the program once,
then, test after test, times in turn:

- bare: the program's own run on a warm box (``Pool.prepare``, the build's artifacts copied in,
  ``run_warm``), which is the sandbox's and the program's time;
- judged: the same test judged (``PackageJudge.run_case``: the test's files read, the same
  warm run in the judge's own pool, the output validated, the result built);
- validation: the default validator's own time on the bare run's output (it runs in the
  judging process, so the judged time holds it).

The overhead of a test is judged - bare - validation, taken per test: the three are timed one
right after the other, so a change of the machine's load hits all three alike, and bare and
judged take turns going first. The figure is the median of those differences: what judging
adds beyond the program's and the validator's own time.

    python -m cellbox.bench.judging TESTS ROUNDS   (with $CELLBOX_CONFIG naming the bench config)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BOXES = 2  # the judge's warm box and the bare runs'
SUM_C = ('#include <stdio.h>\nint main(void) { long a, b; if (scanf("%ld %ld", &a, &b) != 2) '
         'return 1; printf("%ld\\n", a + b); return 0; }\n')


def _package(top: str, tests: int) -> None:
    with open(os.path.join(top, "problem.yaml"), "w") as f:
        f.write("name: Sum\n")
    with open(os.path.join(top, ".timelimit"), "w") as f:
        f.write("1\n")
    secret = os.path.join(top, "data", "secret")
    os.makedirs(secret)
    for i in range(tests):
        with open(os.path.join(secret, f"{i:03}.in"), "w") as f:
            f.write(f"{i} {i * 7}\n")
        with open(os.path.join(secret, f"{i:03}.ans"), "w") as f:
            f.write(f"{i * 8}\n")
    with open(os.path.join(top, "sum.c"), "w") as f:
        f.write(SUM_C)


def main() -> None:
    from cellbox.judge.package import PackageJudge
    from cellbox.judge.problem import ProblemTest, load_problem
    from cellbox.judge.program import load_program
    from cellbox.judge.sandbox import RUN_DIRS, run_environment
    from cellbox.judge.validators import DefaultValidator
    from cellbox.judge.verdict import Verdict
    from cellbox.limits import Limits
    from cellbox.pool import Pool, run_warm

    tests, rounds = int(sys.argv[1]), int(sys.argv[2])
    bare: list[float] = []
    judged: list[float] = []
    validation: list[float] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cellbox-bench-judging-") as top:
        _package(top, tests)
        problem = load_problem(top)
        with PackageJudge(problem) as judge:
            compilation = judge.build(load_program(os.path.join(top, "sum.c")))
            lang = compilation.language
            limits = lang.run_limits(Limits(time=1, wall_time=3,
                                            memory=problem.limits.memory,
                                            output=problem.limits.output))
            with Pool(1, dirs=lang.dirs + RUN_DIRS) as pool:

                def run_bare(test: ProblemTest) -> None:
                    with open(test.input, "rb") as f:
                        data = f.read()
                    start = time.perf_counter()
                    run = pool.prepare(lang.run_argv(limits), limits, stdin=data,
                                       env=run_environment(lang, limits))
                    compilation.copy_into(run.box)
                    result = run_warm([run])[0]
                    bare.append(time.perf_counter() - start)
                    if not result.ok:
                        failed.append(f"bare run: {result.message}")
                    with open(test.answer, "rb") as f:
                        answer = f.read()
                    validator = DefaultValidator(test.flags)
                    start = time.perf_counter()
                    validator.validate(result.stdout, answer)
                    validation.append(time.perf_counter() - start)

                def run_judged(test: ProblemTest) -> None:
                    start = time.perf_counter()
                    case = judge.run_case(compilation, test, 1.0)
                    judged.append(time.perf_counter() - start)
                    if case.verdict is not Verdict.AC:
                        failed.append(f"{test.name}: {case.verdict.value} {case.message}")

                for i, test in enumerate(problem.tests() * rounds):
                    # each goes first every other test, so that what the first leaves warm
                    # for the second (caches, the binary's pages) favours neither
                    for step in (run_bare, run_judged) if i % 2 else (run_judged, run_bare):
                        step(test)
    overhead = [j - b - v for j, b, v in zip(judged, bare, validation, strict=True)]
    print(json.dumps({"tests": tests, "rounds": rounds,
                      "bare_median_ms": statistics.median(bare) * 1e3,
                      "judged_median_ms": statistics.median(judged) * 1e3,
                      "validation_median_ms": statistics.median(validation) * 1e3,
                      "overhead_ms": statistics.median(overhead) * 1e3,
                      "failed": failed[:5]}), flush=True)


def measure(tests: int, rounds: int, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "cellbox.bench.judging", str(tests),
                          str(rounds)], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"failed": [f"the judging case failed: {out.stderr.strip()[-500:]}"]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()
