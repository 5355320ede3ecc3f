"""``cellbox languages``, ``cellbox exec`` and ``cellbox judge``: thin front ends over
``cellbox.judge``. Registered in ``cellbox.cli.subcommands``; imported only when one of them
runs, and it still imports nothing heavy at the top (``--help`` stays fast)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from cellbox.cli.progress import progress_bars
from cellbox.cli.subcommands import parser as _parser
from cellbox.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from cellbox.judge import Checker, JudgeReport
    from cellbox.limits import Limits

CHECKERS = ("tokens", "exact", "float")


def languages_parser() -> argparse.ArgumentParser:
    p = _parser("languages", "List the shipped languages, the Judge0 language ids each "
                "answers, and whether each works here: its version command runs inside a box, "
                "so a toolchain the box cannot see counts as unavailable, and the version it "
                "prints is in the title. See docs/languages.md.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _limit_options(p: argparse.ArgumentParser) -> None:
    from cellbox.limits import JUDGE, MIB

    p.add_argument("--time", type=float, default=None, metavar="SEC",
                   help=f"CPU time limit of each run, all threads counted (default "
                        f"{JUDGE.base.time:g}; with --problem, the package's)")
    p.add_argument("--wall-time", type=float, default=None, metavar="SEC",
                   help="wall-clock limit of each run (default 2 x --time + 1)")
    p.add_argument("--mem", default=None, metavar="SIZE",
                   help="memory limit of each run, every process counted, e.g. 256M or 1G; "
                        f"a bare number is MiB (default {(JUDGE.base.memory or 0) // MIB}M)")
    p.add_argument("--output", default=None, metavar="SIZE",
                   help="most stdout (and stderr) a run may write before OLE (default "
                        f"{(JUDGE.base.output or 0) // MIB}M)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def exec_parser() -> argparse.ArgumentParser:
    p = _parser("exec", "Compile SOURCE in a box and run it once in a fresh box, then print its "
                "output (stdout to stdout, stderr to stderr) and a verdict summary. Exit 0 if "
                "it compiled and ended well, 1 if not (CE, RE, TLE, MLE, OLE, IE).")
    p.add_argument("--lang", required=True, help="language name (see cellbox languages)")
    p.add_argument("source", metavar="SOURCE", help="source file on the host")
    p.add_argument("--stdin", metavar="FILE", help="file fed to the program's stdin "
                   "(default: empty); also in the box as input.txt")
    _limit_options(p)
    return p


def judge_parser() -> argparse.ArgumentParser:
    p = _parser("judge", "Compile SOURCE once, then run it on every test, each run in a box of "
                "its own. With --tests DIR: NAME.in is the input (stdin, and input.txt in the "
                "box) and NAME.out the answer, in natural order of NAME (2 before 10). With "
                "--problem DIR: the tests, limits and validator of a problem package "
                "(docs/problems.md); SOURCE may be a directory of files, and its language "
                "comes from the file extensions. Verdicts: AC, WA, TLE, MLE, RE, OLE, CE, IE. "
                "Exit 0 if the verdict is AC, 1 if not.")
    p.add_argument("--lang", help="language name (see cellbox languages); with --problem, "
                   "the default comes from the file extensions")
    p.add_argument("source", metavar="SOURCE", help="source file (or, with --problem, "
                   "directory) on the host")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--tests", metavar="DIR", help="directory of NAME.in / NAME.out pairs")
    which.add_argument("--problem", metavar="DIR", help="a problem package (problem.yaml, "
                       "data/, output validators)")
    p.add_argument("--checker", default="tokens", metavar="CHECKER",
                   help="with --tests: tokens (default: whitespace-separated tokens equal), "
                        "exact (bytes equal), float (numbers within --abs-eps or --rel-eps), "
                        "or the source file of a testlib-style checker program (run as "
                        "CHECKER input.txt output.txt answer.txt in its own box; exit 0 AC, "
                        "1 WA, 2 PE as WA, 3 fail as IE)")
    p.add_argument("--checker-lang", metavar="LANG",
                   help="language of a checker program (default: from its file extension)")
    p.add_argument("--abs-eps", type=float, default=1e-6, help="float checker: absolute "
                   "tolerance (default 1e-6)")
    p.add_argument("--rel-eps", type=float, default=1e-6, help="float checker: relative "
                   "tolerance (default 1e-6)")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first test that is "
                   "not AC")
    _limit_options(p)
    return p


def verify_problem_parser() -> argparse.ArgumentParser:
    p = _parser("verify-problem", "Judge every submission of a problem package "
                "(submissions/FOLDER/...) and check its verdict against its folder: "
                "accepted, partially_accepted, wrong_answer, time_limit_exceeded, "
                "run_time_error, memory_limit_exceeded, output_limit_exceeded, compile_error, "
                "rejected. Without a fixed time limit, it is derived from the accepted "
                "submissions (docs/problems.md). Prints a table (a progress bar on a "
                "terminal); exit 0 if every verdict matches, 1 if any does not.")
    p.add_argument("problem", metavar="DIR", help="the problem package")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    return p


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"Cannot read {what} {path!r}: {e.strerror}") from None


def _judge_limits(args: argparse.Namespace) -> Limits:
    from cellbox.judge import judging_limits
    from cellbox.limits import JUDGE, parse_size

    def size(text: str | None) -> int | None:
        return None if text is None else parse_size(text, default_unit="m")

    if args.mem is not None and not size(args.mem):
        raise UsageError(f"--mem {args.mem!r} must be more than zero")
    return judging_limits(JUDGE.limits(time=args.time or None, wall_time=args.wall_time,
                                       memory=size(args.mem), output=size(args.output)))


def languages_main(argv: list[str]) -> int:
    args = languages_parser().parse_args(argv)
    from cellbox.judge.sandbox import toolchain_version
    from cellbox.languages import languages

    rows = [{"name": lang.name, "title": lang.titled(version), "source": lang.source,
             "compiled": bool(lang.compile), "judge0_ids": list(lang.judge0_ids),
             "version": version}
            for lang in languages().values() for version in [toolchain_version(lang)]]
    for row in rows:
        row["available"] = row["version"] is not None
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.table import Table

    t = Table(title="cellbox languages")
    for c in ("name", "title", "judge0 ids", "source", "available", "version"):
        t.add_column(c)
    for row in rows:
        t.add_row(str(row["name"]), str(row["title"]),
                  " ".join(map(str, row["judge0_ids"])) or "-",  # type: ignore[arg-type]
                  str(row["source"]), "yes" if row["available"] else "no",
                  str(row["version"] or "-"))
    _console().print(t)
    return 0


def exec_main(argv: list[str]) -> int:
    args = exec_parser().parse_args(argv)
    from cellbox.judge import Verdict, compile_and_run, require_toolchain
    from cellbox.languages import get

    lang, limits = get(args.lang), _judge_limits(args)
    source = _read(args.source, "source")
    stdin = _read(args.stdin, "--stdin file") if args.stdin else b""
    result = compile_and_run(lang, source, stdin, limits)
    if result.verdict is Verdict.IE:
        require_toolchain(lang)  # a missing toolchain is the likely cause: say what to do
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        if result.compilation.message:
            print(result.compilation.message, file=sys.stderr)
        if result.run:
            sys.stdout.buffer.write(result.run.stdout)
            sys.stdout.flush()
            sys.stderr.buffer.write(result.run.stderr)
            sys.stderr.flush()
        _exec_summary(result)
    return 0 if result.verdict is Verdict.AC else 1


def _exec_summary(result) -> None:  # noqa: ANN001 - ExecResult, imported lazily
    r = result.run
    line = f"verdict {result.verdict.value}"
    if r is not None:
        line += (f", {r.message or 'exited 0'}, CPU {r.cpu_time:.3f} s, wall "
                 f"{r.wall_time:.3f} s, memory {(r.peak_memory or 0) / 1048576:.1f} MiB")
    _console(stderr=True).print(line, highlight=False)


def judge_main(argv: list[str]) -> int:
    args = judge_parser().parse_args(argv)
    if args.problem:
        return _judge_problem(args)
    from cellbox.judge import Verdict, judge, load_tests, require_toolchain
    from cellbox.languages import get

    if not args.lang:
        raise UsageError("--tests needs --lang (see cellbox judge --help)")
    lang, limits = get(args.lang), _judge_limits(args)
    source = _read(args.source, "source")
    tests = load_tests(args.tests)
    with progress_bars() as bars:
        advance = bars.task("tests", len(tests))
        report = judge(lang, source, tests, limits, _checker(args), args.fail_fast,
                       on_test=lambda _result: advance())
    if report.verdict is Verdict.IE:
        require_toolchain(lang)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _judge_table(report)
    return 0 if report.verdict is Verdict.AC else 1


def _judge_problem(args: argparse.Namespace) -> int:
    from cellbox.judge.package import PackageJudge
    from cellbox.judge.problem import load_problem
    from cellbox.judge.program import load_program
    from cellbox.judge.verdict import Verdict

    problem = load_problem(args.problem)
    program = load_program(args.source, args.lang)
    time_limit = args.time or problem.limits.time_limit
    if time_limit is None:
        raise UsageError(f"{args.problem} has no fixed time limit (limits.time_limit or "
                         ".timelimit): give --time, or run cellbox verify-problem, which "
                         "derives it from the accepted submissions")
    with progress_bars() as bars, PackageJudge(problem) as judge:
        advance = bars.task("tests", len(problem.tests()))
        report = judge.judge(program, time_limit, on_test=lambda _r: advance()
                             ).report(time_limit)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _problem_table(report)
    return 0 if report.verdict is Verdict.AC else 1


def _problem_table(report) -> None:  # noqa: ANN001 - ProblemReport, imported lazily
    from rich.table import Table

    console = _console()
    if not report.compilation.ok:
        console.print(report.compilation.message, markup=False, highlight=False)
    t = Table(title=f"cellbox judge {report.program} ({report.language}, time limit "
                    f"{report.time_limit:g} s)")
    for c in ("test", "verdict", "score", "CPU (s)", "wall (s)", "memory (MiB)", "message"):
        t.add_column(c)
    for case, score in report.result.cases() if report.result else []:
        t.add_row(case.name, case.at(report.time_limit).value,
                  "-" if score is None else f"{score:g}", f"{case.time:.3f}",
                  f"{case.wall_time:.3f}", f"{(case.memory or 0) / 1048576:.1f}",
                  case.message or "-")
    if report.result:
        console.print(t)
    score = "" if report.score is None else f", score {report.score:g}"
    console.print(f"verdict {report.verdict.value}{score}", highlight=False)


def verify_problem_main(argv: list[str]) -> int:
    args = verify_problem_parser().parse_args(argv)
    from cellbox.judge.problem import load_problem
    from cellbox.judge.verify import submissions, verify

    problem = load_problem(args.problem)
    total = len(submissions(problem))
    with progress_bars() as bars:
        advance = bars.task("submissions", total)
        time_limit, checks = verify(problem, on_done=lambda _c: advance())
    bad = [c for c in checks if c.matched is False]
    if args.json:
        print(json.dumps({"problem": problem.name, "time_limit": time_limit,
                          "ok": not bad, "submissions": [c.to_dict() for c in checks]},
                         indent=2))
        return 1 if bad else 0
    from rich.table import Table

    t = Table(title=f"cellbox verify-problem {problem.name} (time limit {time_limit:g} s)")
    for column in ("folder", "submission", "language", "verdict", "score", "result",
                   "time (s)", "note"):
        t.add_column(column)
    for c in checks:
        result = "skipped" if c.matched is None else "ok" if c.matched else "MISMATCH"
        t.add_row(c.folder, c.name, c.language, c.verdict,
                  "-" if c.score is None else f"{c.score:g}", result, f"{c.seconds:.2f}",
                  c.note or "-")
    console = _console()
    console.print(t)
    matched = sum(c.matched is True for c in checks)
    console.print(f"{matched}/{len(checks)} submissions matched their folder, "
                  f"{len(bad)} mismatched, {len(checks) - matched - len(bad)} skipped",
                  highlight=False)
    return 1 if bad else 0


def _checker(args: argparse.Namespace) -> Checker:
    from cellbox import judge
    from cellbox.languages import get, languages
    from cellbox.limits import JUDGE

    if args.checker == "tokens":
        return judge.TokensChecker()
    if args.checker == "exact":
        return judge.ExactChecker()
    if args.checker == "float":
        return judge.FloatChecker(args.abs_eps, args.rel_eps)
    source = _read(args.checker, "--checker (tokens, exact, float or a checker source file)")
    name = args.checker_lang
    if name is None:
        ext = args.checker.rpartition(".")[2]
        name = next((lang.name for lang in languages().values()
                     if lang.source.rpartition(".")[2] == ext), None)
        if name is None:
            raise UsageError(f"Cannot tell the checker's language from {args.checker!r}; "
                             "give --checker-lang")
    return judge.ProgramChecker(get(name), source, JUDGE.limits(time=10))


def _judge_table(report: JudgeReport) -> None:
    from rich.table import Table

    console = _console()
    if not report.compilation.ok:
        console.print(report.compilation.message, markup=False, highlight=False)
    t = Table(title=f"cellbox judge ({report.language})")
    for c in ("test", "verdict", "CPU (s)", "wall (s)", "memory (MiB)", "message"):
        t.add_column(c)
    for r in report.tests:
        t.add_row(r.name, r.verdict.value, f"{r.time:.3f}", f"{r.wall_time:.3f}",
                  "-" if r.memory is None else f"{r.memory / 1048576:.1f}", r.message or "-")
    if report.tests:
        console.print(t)
    if not report.compilation.ok:
        summary = "it did not compile, so no test ran"
    else:
        passed = sum(r.verdict.value == "AC" for r in report.tests)
        summary = f"{passed}/{len(report.tests)} tests passed"
    console.print(f"verdict {report.verdict.value}: {summary}", highlight=False)


def _console(stderr: bool = False):  # noqa: ANN202 - rich Console, imported lazily
    from cellbox.cli import tables

    return tables.console(stderr)


# Registered with cellbox.cli.subcommands: name -> (handler, parser maker).
COMMANDS = {
    "languages": (languages_main, languages_parser),
    "exec": (exec_main, exec_parser),
    "judge": (judge_main, judge_parser),
    "verify-problem": (verify_problem_main, verify_problem_parser),
}
