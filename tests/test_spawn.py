"""The spawn path: the box's init is the small C program (cellbox/spawn/init.c), built once
into a root-only cache; a run forks the Python interpreter once."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from cellbox import Box, Status, spawn
from cellbox.errors import SandboxSetupError
from tests.support.boxes import InitBox

pytestmark = pytest.mark.core


def test_init_is_the_small_c_program(box: InitBox):
    """pid 1 of a live box is the C init, not a forked Python interpreter (~13 MiB
    resident): found from the host as the child of the running ``cellbox --run``."""
    cli = subprocess.Popen([sys.executable, "-m", "cellbox", "-b", str(box.id), "--run", "--",
                            "/bin/sleep", "2"], stdout=subprocess.DEVNULL)
    try:
        children = f"/proc/{cli.pid}/task/{cli.pid}/children"
        deadline = time.monotonic() + 20
        while not _sleeping_under(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        init = int(open(children).read().split()[0])
        exe = os.readlink(f"/proc/{init}/exe")
        with open(f"/proc/{init}/status") as f:
            status = dict(line.split(":", 1) for line in f)
    finally:
        assert cli.wait(timeout=30) == 0
    assert exe.startswith(os.path.join(spawn.CACHE_DIR, "init-")), exe
    assert int(status["VmRSS"].split()[0]) < 2048, status["VmRSS"]  # KiB


def _sleeping_under(children: str) -> bool:
    """True once the keeper's child (init) has a child of its own (the program)."""
    try:
        init = open(children).read().split()
        return bool(init) and bool(open(f"/proc/{init[0]}/task/{init[0]}/children").read())
    except FileNotFoundError:
        return False


def test_a_nul_byte_in_argv_fails_the_run_cleanly():
    with Box() as box:
        r = box.run(["/bin/echo", "a\0b"])
    assert r.status is Status.INTERNAL_ERROR
    assert "NUL byte" in r.message, r.message


def test_every_step_failure_names_the_step():
    with Box() as box:
        r = box.run(["/bin/true"], chdir="/no/such/dir")
        assert r.status is Status.INTERNAL_ERROR
        assert r.message == ("Sandbox setup failed while opening stdin/stdout/stderr inside "
                             "the box: No such file or directory"), r.message
        r = box.run(["no-such-program"])
        assert r.message == ("Sandbox setup failed while executing no-such-program: No such "
                             "file or directory"), r.message


def test_the_init_binary_is_root_only(monkeypatch, tmp_path):
    """A cache another user could write is refused: root execs the binary in every box."""
    path = spawn.init_binary()
    st = os.stat(path)
    assert st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    open_dir = tmp_path / "cache"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    monkeypatch.setattr(spawn, "CACHE_DIR", str(open_dir))
    monkeypatch.setattr(spawn, "_found", None)
    with pytest.raises(SandboxSetupError, match="not root's alone"):
        spawn.init_binary()
    assert not list(open_dir.iterdir())  # refused before building anything there
