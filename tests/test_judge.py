"""Judging: test directories, checkers, the classic judge attacks, and the exec / judge CLI."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from cellbox.errors import UsageError
from cellbox.judge import (
    Compilation,
    ExactChecker,
    FloatChecker,
    ProgramChecker,
    TestCase,
    TokensChecker,
    Verdict,
    compile_source,
    judge,
    load_tests,
    run_verdict,
)
from cellbox.judge.engine import judge_one
from cellbox.judge.sandbox import on_host, require_toolchain
from cellbox.languages import get
from cellbox.limits import JUDGE
from cellbox.result import RunResult, Status
from tests.support.boxes import cellbox
from tests.support.skips import lacks

pytestmark = pytest.mark.judge

SOURCES = Path(__file__).parent / "languages"
LIMITS = JUDGE.limits(time=1, wall_time=1.5, memory=128 << 20, output=1 << 20,
                      file_size=16 << 20)
DOUBLE = b"print(int(input()) * 2)\n"


def need(name: str) -> None:
    """Skip only when the host lacks the toolchain; one the host has but a box cannot run
    is a failure (require_toolchain raises, saying so)."""
    lang = get(name)
    if not on_host(lang):
        lacks(f"the {name} toolchain (its version command fails on the host; apt-get "
              f"install {' '.join(lang.packages)})")
    require_toolchain(lang)


def make_tests(directory: Path, pairs: dict[str, tuple[str, str]]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, (given, answer) in pairs.items():
        (directory / f"{name}.in").write_text(given)
        (directory / f"{name}.out").write_text(answer)
    return directory


@pytest.fixture(scope="session")
def classic() -> Compilation:
    need("c")
    c = compile_source(get("c"), (SOURCES / "classic.c").read_bytes())
    assert c.ok, c.message
    return c


def classic_run(classic: Compilation, mode: str, answer: str = "") -> tuple[Verdict, str]:
    r = judge_one(classic, TestCase(mode, f"{mode}\n".encode(), answer.encode()),
                  LIMITS, TokensChecker())
    return r.verdict, r.message


# -- the classic judge cases ----------------------------------------------------------------

@pytest.mark.parametrize("mode", ["pause", "stop", "select"])
def test_blocking_forever_is_a_wall_time_tle(classic: Compilation, mode: str) -> None:
    verdict, message = classic_run(classic, mode)
    assert verdict is Verdict.TLE and "wall clock" in message


def test_writing_outside_the_allowed_places_fails(classic: Compilation) -> None:
    verdict, message = classic_run(classic, "escape", "denied\n" * 7)
    assert verdict is Verdict.AC, message
    for path in ("/etc", "/usr", "/", "/bin", "/lib"):
        assert not os.path.exists(os.path.join(path, "cellbox-escape"))


def test_executing_its_own_output_fails(classic: Compilation) -> None:
    verdict, message = classic_run(classic, "exec-output", "WROTE /tmp/own\ndenied\ndenied\n")
    assert verdict is Verdict.AC, message


def test_writing_at_a_2_gib_offset_is_stopped_by_the_file_size_limit(
        classic: Compilation) -> None:
    verdict, message = classic_run(classic, "fsize")
    assert verdict is Verdict.OLE and "File size" in message


def test_tampering_with_the_input_reaches_neither_the_next_test_nor_the_checker(
        tmp_path: Path) -> None:
    tests = load_tests(str(make_tests(tmp_path / "t", {"1": ("3\n", "6\n"),
                                                       "2": ("5\n", "10\n")})))
    checker = ProgramChecker(get("python"), (SOURCES / "double_checker.py").read_bytes(),
                             LIMITS)
    report = judge(get("python"), (SOURCES / "tamper.py").read_bytes(), tests, LIMITS, checker)
    assert [t.verdict for t in report.tests] == [Verdict.AC, Verdict.AC], report.to_dict()


# -- test directories -------------------------------------------------------------------------

@pytest.mark.unit
def test_tests_run_in_natural_order_and_pairs_are_required(tmp_path: Path) -> None:
    d = make_tests(tmp_path / "t", {n: ("1", "2") for n in ("10", "2", "1", "b", "a")})
    (d / "README").write_text("ignored")
    assert [t.name for t in load_tests(str(d))] == ["1", "2", "10", "a", "b"]
    (d / "3.in").write_text("x")
    with pytest.raises(UsageError, match="3.in has no pair"):
        load_tests(str(d))
    with pytest.raises(UsageError, match="no NAME.in / NAME.out pairs"):
        load_tests(str(tmp_path))


# -- checkers -------------------------------------------------------------------------------

@pytest.mark.parametrize(("checker", "output", "answer", "verdict"), [
    (TokensChecker(), b"1  2\n3", b"1 2 3\n", Verdict.AC),
    (TokensChecker(), b"1 2 4", b"1 2 3", Verdict.WA),
    (TokensChecker(), b"1 2", b"1 2 3", Verdict.WA),
    (ExactChecker(), b"1 2\n", b"1 2\n", Verdict.AC),
    (ExactChecker(), b"1  2\n", b"1 2\n", Verdict.WA),
    (FloatChecker(1e-6, 1e-6), b"0.3333334 yes", b"0.333333333 yes", Verdict.AC),
    (FloatChecker(1e-9, 1e-3), b"1000.5", b"1000", Verdict.AC),
    (FloatChecker(1e-6, 1e-6), b"0.334", b"0.333333333", Verdict.WA),
    (FloatChecker(1e-6, 1e-6), b"0.3333334 no", b"0.333333333 yes", Verdict.WA),
])
@pytest.mark.unit
def test_builtin_checkers(checker, output: bytes, answer: bytes,  # noqa: ANN001
                          verdict: Verdict) -> None:
    assert checker.check(b"", output, answer).verdict is verdict


CUSTOM = b"""import sys
out = open(sys.argv[2]).read().split()
sys.exit({"AC": 0, "WA": 1, "PE": 2, "FAIL": 3}[out[0]])
"""


@pytest.mark.parametrize(("printed", "verdict"), [
    ("AC", Verdict.AC), ("WA", Verdict.WA), ("PE", Verdict.WA), ("FAIL", Verdict.IE)])
def test_custom_checker_exit_codes(tmp_path: Path, printed: str, verdict: Verdict) -> None:
    checker = ProgramChecker(get("python"), CUSTOM, LIMITS)
    assert checker.check(b"", printed.encode(), b"").verdict is verdict


def test_custom_checker_that_does_not_compile_is_refused() -> None:
    with pytest.raises(UsageError, match="checker does not compile"):
        ProgramChecker(get("python"), b"def (", LIMITS)


# -- judge: fail-fast, CE -------------------------------------------------------------------

def test_fail_fast_stops_at_the_first_failure(tmp_path: Path) -> None:
    tests = load_tests(str(make_tests(tmp_path / "t", {"1": ("1", "2"), "2": ("2", "5"),
                                                       "3": ("3", "7")})))
    full = judge(get("python"), DOUBLE, tests, LIMITS)
    assert [t.verdict for t in full.tests] == [Verdict.AC, Verdict.WA, Verdict.WA]
    fast = judge(get("python"), DOUBLE, tests, LIMITS, fail_fast=True)
    assert [t.verdict for t in fast.tests] == [Verdict.AC, Verdict.WA]
    assert full.verdict is fast.verdict is Verdict.WA


def test_out_of_memory_messages_are_mle_unless_the_process_limit_was_hit() -> None:
    java = get("java")
    oom = RunResult(Status.RUNTIME_ERROR, exit_code=1,
                    stderr=b'Exception in thread "main" java.lang.OutOfMemoryError: x')
    assert run_verdict(oom, java) is Verdict.MLE
    assert run_verdict(dataclasses.replace(oom, processes_limit_hit=True), java) is Verdict.RE
    assert run_verdict(dataclasses.replace(oom, stderr=b"boom"), java) is Verdict.RE
    killed = RunResult(Status.SIGNALED, signal=9, oom_killed=True, processes_limit_hit=True)
    assert run_verdict(killed, java) is Verdict.MLE


def test_compile_error_judges_nothing() -> None:
    report = judge(get("python"), b"print(", [TestCase("1", b"", b"")], LIMITS)
    assert report.verdict is Verdict.CE and report.tests == []
    assert "SyntaxError" in report.compilation.message


# -- the command line -----------------------------------------------------------------------

def test_judge_json_shape(tmp_path: Path) -> None:
    d = make_tests(tmp_path / "t", {"1": ("1\n", "2\n"), "2": ("2\n", "5\n"),
                                    "3": ("3\n", "6\n")})
    (tmp_path / "s.py").write_bytes(DOUBLE)
    proc = cellbox("judge", "--lang", "python", str(tmp_path / "s.py"), "--tests", str(d),
                   "--time", "2", "--mem", "1G", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verdict"] == "WA" and report["passed"] == 2
    assert report["compile"]["ok"] is True
    assert report["limits"] == {"time": 2.0, "wall_time": 5.0, "memory": 1 << 30,
                                "output": 64 << 20, "file_size": 64 << 20}
    assert [t["verdict"] for t in report["tests"]] == ["AC", "WA", "AC"]
    proc = cellbox("judge", "--lang", "python", str(tmp_path / "s.py"), "--tests", str(d),
                   "--fail-fast", "--json")
    assert [t["name"] for t in json.loads(proc.stdout)["tests"]] == ["1", "2"]
    for t in report["tests"]:
        assert set(t) == {"name", "verdict", "time", "wall_time", "memory", "exit_code",
                          "signal", "message"}
        assert t["memory"] > 0 and t["time"] >= 0


def test_judge_table_and_checkers_from_the_command_line(tmp_path: Path) -> None:
    d = make_tests(tmp_path / "t", {"1": ("1\n", "0.3333333\n")})
    (tmp_path / "s.py").write_text("input()\nprint(1 / 3)\n")
    (tmp_path / "chk.py").write_bytes(CUSTOM)
    base = ("judge", "--lang", "python", str(tmp_path / "s.py"), "--tests", str(d))
    proc = cellbox(*base, "--checker", "float")
    assert proc.returncode == 0 and b"verdict AC: 1/1" in proc.stdout, proc.stderr
    assert cellbox(*base, "--checker", "exact").returncode == 1
    assert cellbox(*base, "--checker", "float", "--abs-eps", "0", "--rel-eps",
                   "1e-12").returncode == 1
    (tmp_path / "s.py").write_text("print('AC')\n")
    proc = cellbox(*base, "--checker", str(tmp_path / "chk.py"), "--json")
    assert json.loads(proc.stdout)["verdict"] == "AC", proc.stderr


def test_exec_prints_output_and_verdict(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_bytes(DOUBLE)
    (tmp_path / "in").write_text("21\n")
    proc = cellbox("exec", "--lang", "python", str(tmp_path / "s.py"), "--stdin",
                   str(tmp_path / "in"))
    assert proc.returncode == 0 and proc.stdout == b"42\n"
    assert b"verdict AC" in proc.stderr
    (tmp_path / "bad.py").write_text("print(\n")
    proc = cellbox("exec", "--lang", "python", str(tmp_path / "bad.py"), "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["verdict"] == "CE" and out["run"] is None


@pytest.mark.parametrize(("args", "complaint"), [
    (("exec", "--lang", "brainfuck", "s.py"), b"Unknown language 'brainfuck'"),
    (("judge", "--lang", "python", "s.py", "--tests", "missing"), b"does not exist"),
    (("judge", "--lang", "python", "s.py", "--tests", "t", "--mem", "lots"),
     b"Cannot read size 'lots'"),
    (("exec", "--lang", "python", "s.py", "--mem", "0"), b"more than zero"),
    (("exec", "--lang", "python", "nosuch.py"), b"Cannot read source"),
    (("judge", "--lang", "python", "s.py"), b"--tests"),
])
def test_command_line_errors_exit_2(tmp_path: Path, args: tuple[str, ...],
                                    complaint: bytes) -> None:
    (tmp_path / "s.py").write_bytes(DOUBLE)
    make_tests(tmp_path / "t", {"1": ("1", "2")})
    args = tuple(str(tmp_path / a) if a in ("s.py", "missing", "t", "nosuch.py") else a
                 for a in args)
    proc = cellbox(*args)
    assert proc.returncode == 2 and complaint in proc.stderr, proc.stderr
    assert b"Traceback" not in proc.stderr
