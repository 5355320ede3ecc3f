"""What the command line and the library tell their users: every exit 2 says why, hints in
the caller's own terms, tables that fit the terminal, a summary that means something, and
defaults that let a shell pipeline run."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from cellbox import Box, Limits
from cellbox.cli import commands, subcommands
from cellbox.errors import BoxBusyError
from cellbox.limits import SERVICE
from cellbox.result import RunResult, Status
from cellbox.server.jobs import Job, Outcome, close_warm_pool, execute

pytestmark = pytest.mark.operations

BOX = 192  # a fixed box of this file's own (the fixtures take 1..139)


def cellbox(*args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cellbox", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_silent_still_says_why_it_exits_2() -> None:
    proc = cellbox("run", "-s", "--stdin=/no/such/file", "--", "/bin/true")
    assert proc.returncode == 2 and "stdin" in proc.stderr, proc.stderr
    assert cellbox("-b", str(BOX), "--init").returncode == 0
    try:
        proc = cellbox("-b", str(BOX), "-s", "--stdin=no-such-file", "--run", "--", "/bin/true")
        assert proc.returncode == 2 and "stdin" in proc.stderr, proc.stderr
    finally:
        assert cellbox("-b", str(BOX), "--cleanup").returncode == 0


def test_version_says_when_the_config_file_is_absent(tmp_path: Path) -> None:
    proc = cellbox("--version", env={**os.environ, "CELLBOX_CONFIG": str(tmp_path / "none")})
    assert proc.returncode == 0
    assert f"config: {tmp_path / 'none'} (not present: the built-in defaults apply)" \
        in proc.stdout, proc.stdout


def test_a_uid_clash_names_box_uids(tmp_path: Path) -> None:
    cfg = tmp_path / "cellbox.toml"
    cfg.write_text(f'box_root = "{tmp_path}/b"\nlock_root = "{tmp_path}/l"\n'
                   "first_uid = 65530\nfirst_gid = 65530\nnum_boxes = 5\n")  # nobody: 65534
    proc = cellbox("--check-config", env={**os.environ, "CELLBOX_CONFIG": str(cfg)})
    assert proc.returncode == 2
    assert "box uids 65530..65534 include the user(s) nobody (65534)" in proc.stderr, \
        proc.stderr


def test_a_busy_box_hint_is_in_the_callers_terms() -> None:
    with Box(BOX + 1):
        with pytest.raises(BoxBusyError) as busy:
            Box(BOX + 1).__enter__()
        assert "wait=SECONDS" in str(busy.value) and "--wait" not in str(busy.value)
        proc = cellbox("-b", str(BOX + 1), "--run", "--", "/bin/true")
        assert proc.returncode == 2 and "use --wait" in proc.stderr, proc.stderr


def test_cellbox_run_allows_a_shell_pipeline() -> None:
    proc = cellbox("run", "--", "/bin/sh", "-c", "echo a | cat; echo b")
    assert proc.returncode == 0 and proc.stdout == "a\nb\n", proc.stderr


def test_the_service_allows_a_pipeline_and_says_when_the_process_limit_hit() -> None:
    command = ("/bin/sh", "-c", "echo a | cat; echo b")
    try:
        ok = Outcome.from_dict(execute(Job(command=command).to_dict()))
        assert (ok.verdict, ok.stdout, ok.processes_limit_hit) == ("AC", b"a\nb\n", False), ok
        one = Outcome.from_dict(execute(Job(command=command, limits=SERVICE.limits(processes=1))
                                        .to_dict()))
        assert one.verdict == "RE" and one.processes_limit_hit, one
    finally:
        close_warm_pool()  # a worker's warm box, which commands run in


def test_tables_fit_the_terminal_width_in_a_pipe() -> None:
    proc = cellbox("doctor", env={**os.environ, "COLUMNS": "70"})
    lines = proc.stdout.splitlines()
    assert lines and max(map(len, lines)) <= 70, proc.stdout


def test_chaos_says_what_it_runs_before_it_starts() -> None:
    first_uid = 65000 + os.getpid() % 50 * 10  # two uids of its own, away from the tests'
    proc = cellbox("chaos", "--kills", "1", "--boxes", "2", "--workers", "1",
                   "--first-uid", str(first_uid), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("cellbox chaos: 1 random SIGKILLs on 2 boxes with 1 workers")


def test_a_compile_error_is_not_zero_of_zero_tests(tmp_path: Path) -> None:
    (tmp_path / "bad.c").write_text("int main(void) { return nope; }\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "1.in").write_text("")
    (tmp_path / "tests" / "1.out").write_text("")
    proc = cellbox("judge", "--lang", "c", str(tmp_path / "bad.c"), "--tests",
                   str(tmp_path / "tests"))
    assert proc.returncode == 1
    assert "verdict CE: it did not compile, so no test ran" in proc.stdout, proc.stdout
    assert "0/0" not in proc.stdout


def test_an_unmeasured_peak_memory_is_not_zero() -> None:
    err = io.StringIO()
    with redirect_stderr(err):
        commands._table(RunResult(status=Status.OK, peak_memory=None))
    assert "not measured" in err.getvalue() and "0.0 MiB" not in err.getvalue().split(
        "max RSS")[0], err.getvalue()


def test_help_lists_every_subcommand() -> None:
    usage = cellbox("--help").stdout.split("\n\n")[0]
    for name in subcommands.SUBCOMMANDS:
        assert f" {name} " in usage, f"cellbox --help does not list {name}:\n{usage}"


def test_library_default_stays_one_process() -> None:
    """isolate's default, for the library (and isolate's grammar): a fork is refused."""
    with Box() as box:
        r = box.run(["/bin/sh", "-c", "echo a | cat"], Limits())
    assert r.status is not Status.OK and r.processes_limit_hit, r
