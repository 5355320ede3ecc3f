"""The long commands (judge, bench, chaos, reap) draw a progress bar on stderr when it is a
terminal (a real pty here), and print nothing of it into a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.operations

FIRST_UID = 74000 + 10 * (os.getpid() % 50)  # away from the suite's, chaos's and bench's uids
ESC = b"\x1b["  # rich draws (and hides the cursor) with terminal escapes


def _commands(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Each command, with the description its bar shows."""
    (tmp / "sum.py").write_text("print(sum(map(int, input().split())))\n")
    tests = tmp / "tests"
    tests.mkdir()
    for n in range(3):
        (tests / f"{n}.in").write_text(f"{n} 1\n")
        (tests / f"{n}.out").write_text(f"{n + 1}\n")
    return {
        "judge": (["judge", "--lang", "python", str(tmp / "sum.py"), "--tests", str(tests)],
                  "tests"),
        "reap": (["reap"], "repairing boxes"),
        "chaos": (["chaos", "--kills", "2", "--boxes", "1", "--workers", "1", "--first-uid",
                   str(FIRST_UID), "--seconds", "60"], "kills"),
        "bench": (["bench", "--rounds", "1", "--warmup", "0", "--throughput-seconds", "0",
                   "--many-boxes", "0", "--out", str(tmp / "bench"), "--first-uid",
                   str(FIRST_UID + 4)], "latency"),
    }


def _run_with_pty_stderr(argv: list[str]) -> tuple[int, bytes, bytes]:
    """Run cellbox with stdout in a pipe and stderr on a new pty; returns (code, out, tty)."""
    master, slave = os.openpty()
    seen: list[bytes] = []

    def drain() -> None:  # keep reading, so the command never blocks on a full terminal
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the pty
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    try:
        proc = subprocess.run([sys.executable, "-m", "cellbox", *argv], stdout=subprocess.PIPE,
                              stderr=slave, stdin=subprocess.DEVNULL, env=env, timeout=120)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return proc.returncode, proc.stdout, b"".join(seen)


@pytest.mark.parametrize("name", ["judge", "reap", "chaos", "bench"])
def test_progress_bar_on_a_terminal(name: str, tmp_path: Path) -> None:
    argv, description = _commands(tmp_path)[name]
    code, out, tty = _run_with_pty_stderr(argv)
    assert code == 0, out.decode() + tty.decode(errors="replace")
    assert ESC in tty and description.encode() in tty, tty
    assert ESC not in out  # the results themselves stay plain


@pytest.mark.parametrize("name", ["judge", "reap", "chaos", "bench"])
def test_no_progress_in_a_pipe(name: str, tmp_path: Path) -> None:
    argv, description = _commands(tmp_path)[name]
    proc = subprocess.run([sys.executable, "-m", "cellbox", *argv], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert ESC not in proc.stderr and ESC not in proc.stdout
    assert description.encode() not in proc.stderr
