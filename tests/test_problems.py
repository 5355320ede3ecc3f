"""Problem packages: every package in tests/problems verifies (each submission gets the verdict
of its folder), the broken ones in tests/problems_broken give IE, never a verdict against the
submission, and those in tests/problems_skipped list what cannot be judged here, with why."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cellbox.errors import UsageError
from cellbox.judge.problem import load_problem
from cellbox.judge.program import load_program
from cellbox.judge.sandbox import on_host
from cellbox.judge.validators import DefaultValidator
from cellbox.judge.verdict import Verdict
from cellbox.judge.verify import submissions
from cellbox.languages import get
from tests.support.skips import lacks

pytestmark = pytest.mark.problems

HERE = os.path.dirname(__file__)
PACKAGES = sorted(os.listdir(os.path.join(HERE, "problems")))
CELLBOX = [sys.executable, "-m", "cellbox"]


def _cellbox(*args: str) -> tuple[int, dict]:
    out = subprocess.run([*CELLBOX, *args, "--json"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def _toolchains(package: str) -> None:
    """Skip, saying what to install, unless this machine has every toolchain the package's
    submissions need (scripts/bootstrap.sh installs them all unless CELLBOX_LANGUAGES says
    otherwise)."""
    for _, path in submissions(load_problem(package)):
        lang = load_program(path).language
        if not on_host(lang):
            lacks(f"the {lang.name} toolchain for {os.path.relpath(path, HERE)} (apt-get "
                  f"install {' '.join(lang.packages)})")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_submission_gets_the_verdict_of_its_folder(package: str) -> None:
    _toolchains(os.path.join(HERE, "problems", package))
    code, report = _cellbox("verify-problem", os.path.join(HERE, "problems", package))
    bad = [s for s in report["submissions"] if s["matched"] is False]
    assert not bad, bad
    assert code == 0
    assert all(s["matched"] for s in report["submissions"])  # nothing skipped here


def test_what_cannot_be_judged_here_is_skipped_with_the_reason() -> None:
    package = os.path.join(HERE, "problems_skipped", "unjudgeable")
    code, report = _cellbox("verify-problem", package)
    assert code == 0  # skipped submissions are listed, not mismatches
    notes = {(s["folder"], s["submission"]): (s["matched"], s["note"])
             for s in report["submissions"]}
    assert notes.pop(("accepted", "double.py")) == (True, "")
    reasons = {
        ("accepted", "legacy.py"): "no python2 language profile",
        ("accepted", "double.bf"): "Cannot tell the language of double.bf",
        ("accepted", "pair"): "none is the main one: name it main.py",
        ("slow_accepted", "double.py"): "the folder slow_accepted states no verdict",
    }
    assert notes.keys() == reasons.keys()
    for key, (matched, note) in notes.items():
        assert matched is None and reasons[key] in note, (key, note)
    table = subprocess.run([*CELLBOX, "verify-problem", package], capture_output=True,
                           text=True, timeout=600)
    assert table.returncode == 0, table.stderr
    assert "1/5 submissions matched their folder, 0 mismatched, 4 skipped" in table.stdout


@pytest.mark.unit
def test_scala_runs_the_object_named_after_its_file(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "Adder.scala").write_text("object Adder { def main(a: Array[String]) = () }\n")
    program = load_program(str(tmp_path / "Adder.scala"))
    assert program.language.name == "scala" and program.entry == "Adder.scala"
    assert "Adder.scala" in program.language.compile
    assert program.language.run[-1] == "Adder"  # the class the JVM starts, not Main


@pytest.mark.unit
def test_common_lisp_keeps_its_file_name_out_of_the_compile_command(tmp_path) -> None:  # noqa: ANN001
    name = 'x") (sb-ext:exit :code 7) ("y.lisp'  # a file name that is also Lisp code
    (tmp_path / name).write_text("(print 1)\n")
    program = load_program(str(tmp_path / name))
    assert program.language == get("commonlisp")
    assert program.source == b"(print 1)\n"  # saved as the profile's script.lisp
    assert not any("exit :code 7" in a for a in program.language.compile)


@pytest.mark.unit
def test_a_common_lisp_program_of_two_files_starts_from_its_main_file(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "Main.lisp").write_text('(load "util.lisp")\n(hello)\n')
    (tmp_path / "util.lisp").write_text('(defun hello () (print "hi"))\n')
    program = load_program(str(tmp_path))
    assert program.entry == "Main.lisp" and program.language.source == "script.lisp"
    assert program.language.compile == get("commonlisp").compile
    assert program.others() == {"util.lisp": b'(defun hello () (print "hi"))\n'}
    assert "util.lisp" in program.language.artifacts  # loaded when it runs


@pytest.mark.unit
def test_a_swi_prolog_program_of_two_files_compiles_both(tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "solve.pl").write_text(":- use_module(util).\nmain :- hello.\n")
    (tmp_path / "util.pl").write_text(":- module(util, [hello/0]).\nhello :- write(hi).\n")
    program = load_program(str(tmp_path))
    assert program.language.name == "prolog-swi"
    compile_argv = program.language.compile
    assert compile_argv[-2:] == ("solve.pl", "util.pl") and "main.pl" not in compile_argv


def test_a_scoring_problem_gives_partial_scores_by_group() -> None:
    code, report = _cellbox("judge", "--problem", os.path.join(HERE, "problems", "scoring"),
                            os.path.join(HERE, "problems", "scoring", "submissions",
                                         "partially_accepted", "int32.py"))
    assert code == 0 and report["verdict"] == "AC" and report["score"] == 30
    secret = next(g for g in report["groups"]["groups"] if g["name"] == "data/secret")
    scores = {g["name"]: (g["verdict"], g["score"]) for g in secret["groups"]}
    assert scores == {"data/secret/large": ("WA", 0), "data/secret/small": ("AC", 30)}


def test_multi_pass_keeps_the_feedback_directory_between_passes() -> None:
    _, report = _cellbox("judge", "--problem", os.path.join(HERE, "problems", "multipass"),
                         os.path.join(HERE, "problems", "multipass", "submissions", "accepted",
                                      "inc.py"))
    (test,) = report["tests"]
    assert report["verdict"] == "AC" and test["passes"] == 3
    assert test["judge_message"] == "pass with 5 ok\npass with 6 ok\npass with 7 ok\n"


def test_a_validator_that_crashes_is_an_internal_error_with_its_feedback() -> None:
    package = os.path.join(HERE, "problems_broken", "crashing_validator")
    code, report = _cellbox("judge", "--problem", package,
                            os.path.join(package, "submissions", "rejected", "echo.py"))
    assert code == 1 and report["verdict"] == "IE"
    first, second = report["tests"]
    assert first["verdict"] == "AC" and first["team_message"] == "hello team"
    assert first["judge_message"] == "judged: fine"
    assert second["verdict"] == "IE" and "must exit 42 or 43" in second["message"]


def test_an_interactor_that_waits_forever_is_an_internal_error() -> None:
    package = os.path.join(HERE, "problems_broken", "stuck_interactor")
    code, report = _cellbox("judge", "--problem", package,
                            os.path.join(package, "submissions", "rejected", "quits.py"))
    assert code == 1 and report["verdict"] == "IE"
    assert "wall clock" in report["tests"][0]["message"]


@pytest.mark.parametrize(("flags", "output", "answer", "verdict"), [
    ((), b"Hello  World\n", b"hello world", Verdict.AC),
    (("case_sensitive",), b"Hello", b"hello", Verdict.WA),
    (("space_change_sensitive",), b"a  b\n", b"a b\n", Verdict.WA),
    (("space_change_sensitive",), b"a b\n", b"a b\n", Verdict.AC),
    (("float_tolerance", "1e-6"), b"3.14159300e0", b"3.1415926", Verdict.AC),
    (("float_absolute_tolerance", "0.1"), b"1.05", b"1", Verdict.AC),
    (("float_relative_tolerance", "0.1"), b"1050", b"1000", Verdict.AC),
    (("float_relative_tolerance", "0.01"), b"1050", b"1000", Verdict.WA),
    (("float_tolerance", "1e-3"), b"2.0e2", b"200", Verdict.AC),
    ((), b"2.0e2", b"200", Verdict.WA),  # no tolerance: numbers are plain tokens
    (("float_tolerance", "1"), b"abc", b"1.0", Verdict.WA),
    ((), b"1 2", b"1 2 3", Verdict.WA),
    ((), b"1 2 3", b"1 2", Verdict.WA),
])
def test_default_validator_flags(flags: tuple[str, ...], output: bytes, answer: bytes,
                                 verdict: Verdict) -> None:
    assert DefaultValidator(flags).validate(output, answer).verdict is verdict


def test_default_validator_refuses_unknown_flags() -> None:
    with pytest.raises(UsageError):
        DefaultValidator(["ignore_everything"])
    with pytest.raises(UsageError):
        DefaultValidator(["float_tolerance"])
