"""Box lifecycle, the isolate command-line grammar and the meta file."""

from __future__ import annotations

import json
import os
import sys

import pytest

from cellbox.cgroup import detect
from cellbox.cli.options import parse
from cellbox.result import RunResult, Status
from tests.support.boxes import CG_ROOT, cellbox, parse_meta

CELLBOX = [sys.executable, "-m", "cellbox"]

pytestmark = pytest.mark.core


def test_init_prints_box_dir_with_box_subdir(box):
    assert box.dir.is_dir()
    assert box.work.is_dir()
    assert os.path.ismount(box.dir)  # the per-box tmpfs: the disk quota


def test_run_ok_exit_code_0_and_status_line(box):
    proc, meta = box.run("/bin/true")
    assert proc.returncode == 0
    assert proc.stderr.decode().startswith("OK (")
    assert meta["exitcode"] == "0"
    assert "status" not in meta  # isolate: no status key on success


def test_run_failure_exit_code_1_and_re(box):
    proc, meta = box.run("/bin/sh", "-c", "exit 3")
    assert proc.returncode == 1
    assert meta["status"] == "RE" and meta["exitcode"] == "3"
    assert meta["message"] == "Exited with error status 3"


def test_signal_gives_sg_with_exitsig(box):
    proc, meta = box.run("/bin/sh", "-c", "kill -SEGV $$")
    assert proc.returncode == 1
    assert meta["status"] == "SG" and meta["exitsig"] == "11"


def test_abort_reports_sigabrt_not_sigsegv(box):
    # The program is not pid 1 of its namespace, so self-sent signals behave normally.
    proc, meta = box.run("/usr/bin/python3", "-c", "import os; os.abort()")
    assert meta["exitsig"] == "6"


def test_files_round_trip_and_ownership(box):
    box.put("in.txt", "hello\n")
    proc, meta = box.run("/bin/sh", "-c", "tr a-z A-Z < in.txt > out.txt", opts=("-p",))
    assert proc.returncode == 0, proc.stderr
    out = box.work / "out.txt"
    assert out.read_text() == "HELLO\n"
    assert out.stat().st_uid == os.getuid()  # chowned back to the box's owner after the run


def test_stdin_stdout_stderr_files(box):
    box.put("in.txt", "abc")
    proc, meta = box.run("/bin/sh", "-c", "cat; echo err >&2",
                         opts=("-p", "-i", "in.txt", "-o", "out.txt", "-r", "err.txt"))
    assert proc.returncode == 0, proc.stderr
    assert (box.work / "out.txt").read_text() == "abc"
    assert (box.work / "err.txt").read_text() == "err\n"


def test_fifos_bound_in_serve_as_stdio_as_in_isolate(box, tmp_path):
    """CMS's Communication with std_io: a directory of FIFOs bound in, the program's stdin and
    stdout on them. The run waits for the other ends (as isolate does), then talks."""
    import subprocess
    import threading

    fifos = tmp_path / "fifos"
    fifos.mkdir(mode=0o755)
    for name in ("to_user", "from_user"):
        os.mkfifo(fifos / name)
        (fifos / name).chmod(0o666)
    received = []

    def other_end():  # as CMS's manager: opens its write end first
        with open(fifos / "to_user", "w") as to_user, open(fifos / "from_user") as from_user:
            to_user.write("20 22\n")
            to_user.close()
            received.append(from_user.read())

    manager = threading.Thread(target=other_end, daemon=True)
    manager.start()
    proc = subprocess.run(
        [*CELLBOX, "-b", str(box.id), f"--dir=/fifo0={fifos}:rw", "--stdin=/fifo0/to_user",
         "--stdout=/fifo0/from_user", "--wall-time=20", "--run", "--", "/bin/sh", "-c",
         "read a b; echo $((a + b))"], capture_output=True, timeout=60)
    manager.join(timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert received == ["42\n"]


def test_stderr_to_stdout(box):
    proc, _ = box.run("/bin/sh", "-c", "echo a; echo b >&2",
                      opts=("-o", "out.txt", "--stderr-to-stdout"))
    assert proc.returncode == 0
    assert sorted((box.work / "out.txt").read_text().split()) == ["a", "b"]


def test_chdir_and_env_rules(box):
    (box.work / "sub").mkdir()
    proc, _ = box.run("/bin/sh", "-c", 'pwd > /box/o; echo "$A-$B-$HOME" >> /box/o',
                      opts=("-c", "sub", "-E", "A=1", "-E", "HOME", "-E", "B=x", "-E", "B="))
    assert proc.returncode == 0, proc.stderr
    lines = (box.work / "o").read_text().splitlines()
    assert lines == ["/box/sub", f"1--{os.environ.get('HOME', '')}"]


def test_single_process_by_default(box):
    proc, _ = box.run("/bin/sh", "-c", "/bin/true")
    assert proc.returncode == 1 and b"fork" in proc.stderr


def test_default_environment_is_minimal(box):
    proc, _ = box.run("/usr/bin/env", opts=("-o", "env.txt"))
    assert (box.work / "env.txt").read_text() == "LIBC_FATAL_STDERR_=1\n"


def test_meta_to_stdout_and_json_format(box):
    proc = cellbox("-b", str(box.id), "-M", "-", "--meta-format=json", "-s", "--run", "--",
                   "/bin/true")
    meta = json.loads(proc.stdout)
    assert meta["exitcode"] == 0 and "time" in meta and "time-wall" in meta
    assert proc.stderr == b""  # --silent


def test_meta_has_isolate_keys(box):
    _, meta = box.run("/bin/true")
    for key in ("time", "time-wall", "max-rss", "csw-voluntary", "csw-forced", "cg-mem",
                "exitcode"):
        assert key in meta, key


def test_a_meta_file_written_over_a_longer_one_is_cut_to_its_length(box, tmp_path):
    meta = tmp_path / "run.meta"
    meta.write_text("Z" * 10000 + "\n")
    proc = cellbox("-b", str(box.id), f"--meta={meta}", "--run", "--", "/bin/true")
    assert proc.returncode == 0, proc.stderr
    text = meta.read_text()
    assert "Z" not in text and text.endswith("\n") and "exitcode:0\n" in text


def test_init_twice_fails_and_cleanup_is_idempotent(box):
    proc = cellbox("-b", str(box.id), "--init")
    assert proc.returncode == 2 and b"already initialised" in proc.stderr
    assert cellbox("-b", str(box.id), "--cleanup").returncode == 0
    assert not box.dir.exists()
    assert cellbox("-b", str(box.id), "--cleanup").returncode == 0  # nothing to do: fine
    assert cellbox("-b", str(box.id), "--init").returncode == 0  # for the fixture's cleanup


def test_second_run_starts_clean(box):
    box.run("/bin/sh", "-c", "echo x > /tmp/left; echo y > /dev/shm/left")
    proc, _ = box.run("/bin/sh", "-c", "ls -A /tmp /dev/shm > /box/ls", opts=("-p",))
    assert "left" not in (box.work / "ls").read_text()


def test_special_files_are_removed_unless_asked(box):
    box.run("/bin/sh", "-c", "ln -s /etc/passwd link; mkfifo fifo; echo z > f", opts=("-p",))
    assert sorted(p.name for p in box.work.iterdir()) == ["f"]
    box.run("/bin/sh", "-c", "ln -s /etc/passwd link2", opts=("-p", "--special-files"))
    assert (box.work / "link2").is_symlink()


@pytest.mark.cgroup2
def test_version_and_check_config():
    proc = cellbox("--version")
    assert proc.returncode == 0 and b"cellbox" in proc.stdout
    version = f"cgroup v{detect(CG_ROOT).version}".encode()  # v1 or v2: this machine's
    proc = cellbox("--check-config")
    assert proc.returncode == 0 and version in proc.stdout
    proc = cellbox("--print-cg-root")
    assert proc.returncode == 0 and proc.stdout.startswith(version)


def test_oneshot_run_json():
    proc = cellbox("run", "--json", "-t", "2", "--", "/bin/sh", "-c", "echo hi; exit 4")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "RUNTIME_ERROR" and doc["exit_code"] == 4
    assert doc["stdout"] == "hi\n"


def test_oneshot_run_copies_files(tmp_path):
    src = tmp_path / "prog.py"
    src.write_text("print(6 * 7)")
    proc = cellbox("run", "--json", "--file", f"{src}:main.py", "--",
                   "/usr/bin/python3", "main.py")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stdout"] == "42\n"


# -- the grammar itself (getopt_long semantics), no kernel needed ----------------------------

@pytest.mark.unit
def test_optional_argument_forms():
    assert parse(["-p", "--run", "--", "x"])[0]["processes"] is None
    assert parse(["-p5", "--run"])[0]["processes"] == "5"
    assert parse(["--processes=7", "--run"])[0]["processes"] == "7"
    # "-p 5": 5 is the program, as with getopt
    values, rest = parse(["-p", "5"])
    assert values["processes"] is None and rest == ["5"]


@pytest.mark.unit
def test_bundled_shorts_prefixes_and_repeats():
    values, rest = parse(["-vsb3", "--box=4", "-E", "A", "--env=B=1", "--run", "--", "p", "-x"])
    assert values["verbose"] == [True] and values["silent"] is True
    assert values["box-id"] == "4"  # the later one wins, as in isolate
    assert values["env"] == ["A", "B=1"]
    assert rest == ["p", "-x"]


@pytest.mark.unit
def test_meta_text_format_roundtrip():
    r = RunResult(status=Status.MEMORY_LIMIT, signal=9, cpu_time=0.1234, wall_time=0.5,
                  peak_memory=10 << 20, oom_killed=True, message="Memory limit exceeded")
    meta = parse_meta(r.meta_text())
    assert meta["status"] == "SG"  # what old parsers know...
    assert meta["exceeded"] == "memory"  # ...and what says which limit it was
    assert meta["cg-oom-killed"] == "1" and meta["cg-mem"] == str(10 << 10)
    assert meta["time"] == "0.123"


@pytest.mark.unit
def test_cli_reference_is_generated_from_the_option_table():
    import subprocess
    import sys
    from pathlib import Path

    generated = subprocess.run([sys.executable, "-m", "cellbox.cli.docgen"], check=True,
                               capture_output=True, text=True).stdout
    committed = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    assert generated == committed, \
        "docs/cli.md is stale: python -m cellbox.cli.docgen > docs/cli.md"
