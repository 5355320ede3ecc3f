"""The benchmark's judging case: what judging a problem package adds per test, beyond the
program's own warm run.

A worker process (the keeper refuses threads, and the benchmark has some) writes a package of
TESTS tests (a C program adding two numbers, the default validator), builds the program once,
then, test after test, times in turn:

- bare: the program's own run on a warm box (``Pool.prepare``, the build's artifacts copied in,
  ``run_warm``), which is the sandbox's and the program's time;
- judged: the same test judged (``PackageJudge.run_case``: the test's files read, the same
  warm run in the judge's own pool, the output validated, the result built).

The overhead is the difference of the medians.

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
    from cellbox.judge.problem import load_problem
    from cellbox.judge.program import load_program
    from cellbox.judge.sandbox import RUN_DIRS, run_environment
    from cellbox.judge.verdict import Verdict
    from cellbox.limits import Limits
    from cellbox.pool import Pool, run_warm

    tests, rounds = int(sys.argv[1]), int(sys.argv[2])
    bare: list[float] = []
    judged: list[float] = []
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
                for _ in range(rounds):
                    for test in problem.tests():
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
                        start = time.perf_counter()
                        case = judge.run_case(compilation, test, 1.0)
                        judged.append(time.perf_counter() - start)
                        if case.verdict is not Verdict.AC:
                            failed.append(f"{test.name}: {case.verdict.value} {case.message}")
    bare_ms, judged_ms = statistics.median(bare) * 1e3, statistics.median(judged) * 1e3
    print(json.dumps({"tests": tests, "rounds": rounds, "bare_median_ms": bare_ms,
                      "judged_median_ms": judged_ms, "overhead_ms": judged_ms - bare_ms,
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
