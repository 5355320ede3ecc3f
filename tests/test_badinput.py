"""Malformed options, unknown options, missing files, boxes never initialised: each gets a
clean message, exit status 2, and changes nothing."""

from __future__ import annotations

import pytest

from cellbox.errors import UsageError
from cellbox.rules import parse_dir_rule
from tests.support.boxes import cellbox

pytestmark = pytest.mark.badinput

# Directory rules that the rule grammar itself refuses.
BAD_DIR_RULES = ["/box/../etc", "/", "/x=relative/path", "/x:bogus"]
BAD_RUN_OPTIONS = [
    ["-t", "abc"], ["-t", "-1"], ["--time=nan"], ["-w", "x"], ["-x", "?"], ["-m", "12Q"],
    ["--cg-mem=lots"], ["-k", "-5"], ["-n", "two"], ["-n", "2"], ["-f", "1e"], ["--core=x"],
    ["-p0x"], ["-b", "x"], ["-b", "-1"], ["-b", "99999"], *(["-d", r] for r in BAD_DIR_RULES),
    ["-d", "/x=/nonexistent-cellbox-dir"],
    ["-E", "=v"], ["--meta-format=xml"], ["-r", "e", "--stderr-to-stdout"],
    ["--as-uid=1000"], ["--wait=soon"], ["--bogus"], ["-Z"], ["--json"],
]


@pytest.mark.unit
@pytest.mark.parametrize("rule", BAD_DIR_RULES)
def test_bad_dir_rules_are_refused_by_the_grammar(rule: str) -> None:
    with pytest.raises(UsageError, match="-d|Directory rule|directory option"):
        parse_dir_rule(rule)


@pytest.mark.parametrize("opts", BAD_RUN_OPTIONS, ids=lambda o: " ".join(o))
def test_bad_run_option_exit_2_and_no_change(box, opts):
    (box.work / "keep").write_text("k")
    before = sorted(p.name for p in box.work.iterdir())
    proc = cellbox("-b", str(box.id) if "-b" not in opts else "0", *opts, "--run", "--",
                   "/bin/sh", "-c", "touch /box/ran")
    assert proc.returncode == 2, (opts, proc.stderr)
    msg = proc.stderr.decode()
    assert msg.startswith("cellbox: ") and len(msg) > 20, msg
    assert "Traceback" not in msg
    assert sorted(p.name for p in box.work.iterdir()) == before


@pytest.mark.parametrize("args", [
    [], ["--run"], ["--init", "--run"], ["--init", "prog"], ["--cleanup", "-q", "1,2"],
    ["--init", "-q", "10"], ["--init", "-q", "a,b"], ["--version=3"],
], ids=lambda a: " ".join(a) or "nothing")
def test_bad_command_lines(args):
    proc = cellbox("-b", "190", *args)
    assert proc.returncode == 2, (args, proc.stderr)
    assert proc.stderr.startswith(b"cellbox: ") and b"Traceback" not in proc.stderr


def test_run_on_box_never_initialised():
    proc = cellbox("-b", "191", "--run", "--", "/bin/true")
    assert proc.returncode == 2
    assert b"not initialised" in proc.stderr and b"--init" in proc.stderr


@pytest.mark.parametrize("program", ["/nonexistent/prog", "./missing", "no-such-command"])
def test_a_program_that_cannot_be_executed_is_re_127_as_in_isolate(box, program):
    proc, meta = box.run(program)
    assert proc.returncode == 1
    assert (meta["status"], meta["exitcode"], meta["cellbox-status"]) == ("RE", "127",
                                                                          "EXEC_ERROR")
    assert meta["message"].startswith("Exited with error status 127 (cannot execute")
    assert "No such file" in meta["message"]
    assert f'execve("{program}"): No such file or directory\n'.encode() in proc.stderr


def test_an_exec_error_goes_to_the_programs_stderr_file(box):
    box.put("script", "#!/no/such/interpreter\n", mode=0o755)
    proc, meta = box.run("./script", opts=("--stderr=err.txt",))
    assert proc.returncode == 1 and meta["exitcode"] == "127", proc.stderr
    assert (box.work / "err.txt").read_bytes() == \
        b'execve("./script"): No such file or directory\n'


def test_missing_stdin_file_is_xx(box):
    proc, meta = box.run("/bin/cat", opts=("-i", "missing.txt"))
    assert proc.returncode == 2 and meta["status"] == "XX"
    assert "stdin" in meta["message"]


def test_bad_config_file(tmp_path, monkeypatch):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('box_root = "relative"\n')
    monkeypatch.setenv("CELLBOX_CONFIG", str(cfg))
    proc = cellbox("--check-config")
    assert proc.returncode == 2 and b"absolute" in proc.stderr
    cfg.write_text("num_boxes = 'ten'\n")
    proc = cellbox("--check-config")
    assert proc.returncode == 2 and b"num_boxes" in proc.stderr
    cfg.write_text("unknown_key = 1\n")
    assert cellbox("--check-config").returncode == 2
    monkeypatch.setenv("CELLBOX_CONFIG", str(tmp_path / "missing.toml"))
    assert cellbox("--check-config").returncode == 2
