"""The spawn path: every box's init is the small C program (cellbox/boxinit/), built once
into a root-only cache and posix_spawned by the keeper: no run copies the interpreter."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from cellbox import Box, Status, boxinit, keeper
from cellbox.api import RunOptions
from cellbox.errors import SandboxSetupError
from cellbox.rules import DirRule, Kind
from cellbox.spec import RunSpec
from tests.support.boxes import InitBox
from tests.support.skips import lacks

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
    assert exe.startswith(os.path.join(boxinit.CACHE_DIR, "boxinit-")), exe
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
        assert r.message == ("Exited with error status 127 (cannot execute no-such-program: "
                             "No such file or directory)"), r.message
        assert r.stderr == b'execve("no-such-program"): No such file or directory\n'


def test_the_init_binary_is_root_only(monkeypatch, tmp_path):
    """A cache another user could write is refused: root execs the binary in every box."""
    path = boxinit.binary()
    st = os.stat(path)
    assert st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    open_dir = tmp_path / "cache"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    monkeypatch.setattr(boxinit, "CACHE_DIR", str(open_dir))
    monkeypatch.setattr(boxinit, "_found", None)
    with pytest.raises(SandboxSetupError, match="not root's alone"):
        boxinit.binary()
    assert not list(open_dir.iterdir())  # refused before building anything there


def test_no_run_copies_the_interpreter(tmp_path):
    """Every process the keeper creates, for a fresh run or a warm box, shares its memory
    until it execs the box init (posix_spawn: CLONE_VM | CLONE_VFORK); the box init's own
    clone makes it the keeper's child. strace lists the keeper's clone calls (not its
    children's)."""
    if not shutil.which("strace"):
        lacks("strace: the test reads the keeper's clone calls with it")
    script = ("from cellbox import Box, Pool\n"
              "with Box() as box:\n    assert box.run(['/bin/true']).status.name == 'OK'\n"
              "with Pool(size=1) as pool:\n    assert pool.run(['/bin/true']).status.name == 'OK'\n")
    trace = tmp_path / "trace"
    subprocess.run(["strace", "-qq", "-o", str(trace), "-e", "trace=clone,clone3,fork,vfork",
                    sys.executable, "-c", script], check=True, timeout=120)
    clones = [line for line in trace.read_text().splitlines() if not line.startswith("---")]
    assert len(clones) == 2, clones  # one launcher per box init
    assert all("CLONE_VM|CLONE_VFORK" in line for line in clones), clones


def _spec_with_a_missing_source(box: Box) -> RunSpec:
    spec = box._boxes.resolve(box._leased(), box._caller, RunOptions().spec(["/bin/true"]))
    gone = DirRule("/gone", "/nonexistent/cellbox-test-source", Kind.BIND)
    return replace(spec, rules=[*spec.rules, gone])


def test_a_failed_root_step_is_named_in_fresh_and_warm_boxes():
    """The box init's own steps name themselves too: a bind source that vanished after the
    rules were checked fails a fresh run (XX) and a warm box's start (an error)."""
    expected = ("Sandbox setup failed while building the box's root filesystem: "
                "/nonexistent/cellbox-test-source: ")
    with Box() as box:
        spec = _spec_with_a_missing_source(box)
        result = keeper.run_many([(spec, box._boxes.cgroups.box(box.box_id), None)])[0]
        assert result.status is Status.INTERNAL_ERROR
        assert result.message.startswith(expected), result.message
        assert result.message.endswith(": No such file or directory"), result.message
        slot = keeper.Slot(spec, box._boxes.cgroups.box(box.box_id))
        with pytest.raises(SandboxSetupError, match="building the box's root filesystem: "
                           "/nonexistent/cellbox-test-source: No such file"):
            slot.start()
        assert slot.pid is None  # the failed box init was reaped


def test_a_malformed_plan_is_refused_naming_the_step():
    """The box init reads nothing it was not told to expect: a run plan where the box plan is
    due fails at its first step, reported on the status fd the message carried."""
    ours, theirs = socket.socketpair()
    fd = theirs.fileno()
    launcher = os.posix_spawn(boxinit.binary(), ["cellbox-boxinit", str(fd)], {},
                              file_actions=[(os.POSIX_SPAWN_DUP2, fd, fd)])
    theirs.close()
    status_r, status_w = os.pipe()
    body = struct.pack("<I", 2)  # a run plan's kind
    socket.send_fds(ours, [struct.pack("<I", len(body)) + body], [status_w, status_r])
    os.close(status_w)
    with os.fdopen(status_r, "rb") as status:
        report = json.loads(status.read())
    assert os.waitpid(launcher, 0)[1] == 127 << 8
    ours.close()
    assert report == {"kind": "error", "step": "reading the box's plan",
                      "error": "a request of the wrong kind came (box expected)"}
