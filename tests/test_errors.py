"""The command line's error paths: each message says what to do, and the exit code is
nonzero (2, as isolate's for every error of its own)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox.config import load_config
from cellbox.errors import UsageError
from cellbox.judge import Verdict, compile_and_run, require_toolchain
from cellbox.languages import get
from cellbox.lock import BoxLock
from tests.support.boxes import InitBox, cellbox

pytestmark = pytest.mark.badinput


@pytest.mark.unit
def test_unknown_command_lists_the_commands() -> None:
    proc = cellbox("frobnicate")
    assert proc.returncode == 2
    assert b"Unknown command 'frobnicate'" in proc.stderr
    assert b"--init" in proc.stderr and b"judge" in proc.stderr


def test_busy_box_says_how_to_wait_and_what_holds_it(box: InitBox) -> None:
    lock = BoxLock(load_config().lock_root, box.id).acquire()
    try:
        now = cellbox("-b", str(box.id), "--run", "--", "/bin/true")
        waited = cellbox("-b", str(box.id), "--wait=0.2", "--run", "--", "/bin/true")
    finally:
        lock.release()
    assert now.returncode == 2 and b"is busy" in now.stderr and b"--wait" in now.stderr
    assert waited.returncode == 2 and b"gave up after waiting 0.2 s" in waited.stderr
    assert b"--wait=SECONDS" in waited.stderr and b"cellbox boxes" in waited.stderr


def test_uninitialised_box_says_init_first() -> None:
    proc = cellbox("-b", "199", "--run", "--", "/bin/true")  # 140..199: fixed-id tests
    assert proc.returncode == 2 and b"not initialised; run --init first" in proc.stderr


@pytest.fixture
def readable_copy() -> Iterator[Path]:
    """This checkout's cellbox package, and the session's config, where any user can read
    them."""
    top = Path(tempfile.mkdtemp(prefix="cellbox-errors-"))
    shutil.copytree(Path(__file__).parent.parent / "cellbox", top / "cellbox",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.environ["CELLBOX_CONFIG"], top / "cellbox.toml")
    for d, _, files in os.walk(top):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    yield top
    shutil.rmtree(top)


def test_root_boxes_as_a_user_say_use_sudo(readable_copy: Path) -> None:
    """A user whose config names root's state directories is told to use sudo or their own
    directories (rootless mode), not just 'permission denied'."""
    # The system's python3 (the test venv's may sit under root's home); nobody can run it.
    proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "/usr/bin/python3", "-m", "cellbox", "-b", "0", "--init"],
                          capture_output=True, timeout=60, cwd="/",
                          env={"PYTHONPATH": str(readable_copy), "PATH": "/usr/bin:/bin",
                               "CELLBOX_CONFIG": str(readable_copy / "cellbox.toml")})
    assert proc.returncode == 2, proc.stderr
    assert b"permission denied" in proc.stderr and b"sudo" in proc.stderr
    assert b"rootless mode" in proc.stderr


def test_bad_test_set_says_what_it_needs(tmp_path: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("print(1)\n")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "1.in").write_text("1\n")
    for tests, words in ((tmp_path / "none", b"does not exist"),
                         (tmp_path / "t", b"every NAME.in needs a NAME.out")):
        proc = cellbox("judge", "--lang", "python", str(source), "--tests", str(tests))
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr


@pytest.mark.judge
def test_missing_toolchain_is_ie_and_says_install() -> None:
    """A compiler the box cannot see is the judge's fault (IE), never the submission's (CE);
    the command line then says which toolchain to install."""
    c = get("c")
    # A name of its own: toolchain_version() remembers each language by name for the process.
    broken = dataclasses.replace(c, name="c-broken",
                                 compile=("/nonexistent/cc", *c.compile[1:]),
                                 version=("/nonexistent/cc", "--version"))
    result = compile_and_run(broken, b"int main(void) { return 0; }\n")
    assert result.verdict is Verdict.IE and result.run is None
    with pytest.raises(UsageError, match="toolchain is not installed here.*Install"):
        require_toolchain(broken)
    require_toolchain(get("python"))  # a working one passes
