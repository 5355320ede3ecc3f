"""The Python library: Box leases, files in and out, runs with captured output."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cellbox import Box, Limits, Pool, RunResult, Status
from cellbox.errors import BoxBusyError, BoxStateError, UsageError

pytestmark = pytest.mark.library


def test_run_with_stdin_and_captured_output():
    with Box() as box:
        box.write_file("rev.py", "import sys\nprint(sys.stdin.read()[::-1])\n"
                                 "print('note', file=sys.stderr)")
        r = box.run(["python3", "rev.py"], stdin=b"abc", limits=Limits(time=5))
    assert isinstance(r, RunResult)
    assert r.status is Status.OK and r.ok
    assert r.stdout == b"cba\n" and r.stderr == b"note\n"
    assert r.exit_code == 0 and r.cpu_time > 0 and r.wall_time > 0 and r.peak_memory


def test_stderr_to_stdout_keeps_the_order_written():
    with Box() as box:
        r = box.run(["/bin/sh", "-c", "echo a; echo b >&2; echo c"], stderr_to_stdout=True,
                    limits=Limits(processes=2))
    assert (r.stdout, r.stderr) == (b"a\nb\nc\n", b"")


def test_large_stdin_and_output_through_pipes():
    data = os.urandom(3 << 20)
    with Box() as box:
        r = box.run(["cat"], stdin=data)
    assert r.status is Status.OK and r.stdout == data


def test_output_cap_truncates_and_reports():
    with Box() as box:
        r = box.run(["/bin/sh", "-c", "head -c 1000000 /dev/zero"],
                    limits=Limits(output=1000, processes=4, time=5))
    assert r.status is Status.OUTPUT_LIMIT and r.stdout_truncated
    assert len(r.stdout) == 1000


def test_memory_limit_is_its_own_status():
    with Box() as box:
        r = box.run(["python3", "-c", "b = bytearray(300 << 20)"],
                    limits=Limits(memory=64 << 20, time=10))
    assert r.status is Status.MEMORY_LIMIT and r.oom_killed


def test_files_written_by_program_are_read_back_and_links_refused():
    with Box() as box:
        r = box.run(["/bin/sh", "-c", "echo data > out; ln -s /etc/shadow evil"],
                    limits=Limits(processes=4))
        assert r.ok, r.stderr
        assert box.read_file("out") == b"data\n"
        # the default run deletes links, so plant one the way a racing program would
        os.symlink("/etc/shadow", os.path.join(box.path, "box", "evil2"))
        with pytest.raises(BoxStateError):
            box.read_file("evil2")
        with pytest.raises(BoxStateError):
            box.write_file("evil2/x", b"no")


def test_fixed_box_is_leased_exclusively():
    with Box(box_id=150) as first:
        assert first.box_id == 150
        with pytest.raises(BoxBusyError):
            with Box(box_id=150):
                pass
    with Box(box_id=150) as again:  # released at exit
        assert again.box_id == 150


def test_lease_is_freed_when_holder_is_killed():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the holder: takes the box, then waits to be killed
        os.close(r)
        try:
            with Box(box_id=151):
                os.write(w, b"x")
                time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"x"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with Box(box_id=151, wait=0) as box:  # free at once (no wait); the stale storage is reset
        r2 = box.run(["/bin/true"])
    assert r2.ok
    os.close(r)


def test_run_outside_lease_is_an_error():
    box = Box()
    with pytest.raises(BoxStateError):
        box.write_file("x", b"")


def test_str_stdin_is_text_never_a_host_path(tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("must not be read")
    with Box() as box:
        r = box.run(["cat"], stdin=str(secret))
        r2 = box.run(["cat"], stdin=secret)  # a Path is explicitly a host file
    assert r.stdout == str(secret).encode()
    assert r2.stdout == b"must not be read"


def test_clear_empties_the_box_and_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host file")
    with Box() as box:
        box.make_dir("d/e")
        box.write_file("d/e/f", b"x")
        os.symlink(outside, os.path.join(box.path, "box", "link"))  # as a program could leave
        box.clear()
        assert os.listdir(os.path.join(box.path, "box")) == []
        assert box.run(["/bin/true"]).ok  # still a working box
    assert (outside / "keep").read_text() == "host file"


def test_an_unknown_run_option_is_refused():
    with Box() as box, pytest.raises(TypeError, match="stdn"):
        box.run(["/bin/true"], stdn=b"")


def test_a_pool_run_refuses_what_the_pool_fixes():
    with Pool(size=1) as pool:
        for option in ({"dirs": ["/etc"]}, {"share_net": True}, {"stderr_to_stdout": True}):
            with pytest.raises(UsageError, match="Pool\\(\\)"):
                pool.run(["/bin/true"], **option)
        assert pool.run(["/bin/true"], chdir="/tmp").ok
