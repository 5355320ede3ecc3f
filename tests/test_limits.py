"""Every limit, hit and not hit, through the command line and the meta file.

Hostile programs carry caps of their own (loop counts, wall-clock timeouts, a bounded number
of forks) and every run has a wall-clock limit, so a sandbox bug fails a test instead of
harming the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.boxes import PY, InitBox, new_box, run_capped

pytestmark = pytest.mark.limits

def assert_ok(proc, meta: dict[str, str]) -> None:  # noqa: ANN001
    assert proc.returncode == 0, (proc.stderr, meta)
    assert meta["cellbox-status"] == "OK", meta
    assert meta["exitcode"] == "0"
    for key in ("status", "killed", "exceeded", "cg-oom-killed", "message"):
        assert key not in meta, meta


# -- CPU time --------------------------------------------------------------------------------

@pytest.mark.cgroup2
def test_cpu_time_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./burn", "1", "10", opts=("-t", "0.5"))
    assert proc.returncode == 1
    assert meta["status"] == "TO"
    assert meta["exceeded"] == "time"
    assert meta["killed"] == "1"
    assert meta["exitsig"] == "9"
    assert meta["message"] == "Time limit exceeded"
    assert 0.5 <= float(meta["time"]) < 5, meta  # stopped long before its 10 s
    assert "exitcode" not in meta


def test_cpu_time_not_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./burn", "1", "0.2", opts=("-t", "2"))
    assert_ok(proc, meta)
    assert float(meta["time"]) >= 0.15


@pytest.mark.cgroup2
def test_cpu_time_counts_every_thread(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./burn", "4", "10", opts=("-p", "-t", "1"))
    assert proc.returncode == 1
    assert meta["status"] == "TO" and meta["exceeded"] == "time" and meta["killed"] == "1"
    assert 1.0 <= float(meta["time"]) < 10, meta  # stopped long before its 40 s


def test_threads_need_a_process_limit(progs: InitBox) -> None:
    """-p1 (the default) leaves no room for a second thread."""
    proc, meta = run_capped(progs, "./burn", "2", "0.01")
    assert meta["exitcode"] == "3", (proc.stderr, meta)  # pthread_create failed
    assert meta["processes-limit-hit"] == "1"


# -- wall time and --extra-time --------------------------------------------------------------

@pytest.mark.cgroup2
def test_wall_time_hit(box: InitBox) -> None:
    proc, meta = box.run("/bin/sleep", "5", opts=("-w", "0.5"))
    assert proc.returncode == 1
    assert meta["status"] == "TO"
    assert meta["exceeded"] == "wall-time"
    assert meta["killed"] == "1"
    assert meta["message"] == "Time limit exceeded (wall clock)"
    assert 0.5 <= float(meta["time-wall"]) < 5, meta  # stopped before the sleep's end
    assert float(meta["time"]) < 0.5  # sleeping is not CPU time


def test_wall_time_not_hit(box: InitBox) -> None:
    proc, meta = box.run("/bin/sleep", "0.1", opts=("-w", "3"))
    assert_ok(proc, meta)


def test_extra_time_lets_the_program_finish_but_it_is_still_over(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./burn", "1", "0.7", opts=("-t", "0.4", "-x", "1"))
    assert proc.returncode == 1
    assert meta["status"] == "TO" and meta["exceeded"] == "time"
    assert "killed" not in meta
    assert meta["exitcode"] == "0"
    assert 0.65 <= float(meta["time"]) < 1.4, meta  # below the limit and its grace
    assert float(proc.stdout) >= 0.7  # the program got to the end and reported


@pytest.mark.cgroup2
def test_extra_time_kills_after_the_grace(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./burn", "1", "10", opts=("-t", "0.3", "-x", "0.3"))
    assert meta["status"] == "TO" and meta["killed"] == "1"
    assert 0.6 <= float(meta["time"]) < 5, meta  # stopped long before its 10 s


def test_extra_time_with_a_wall_time_limit(box: InitBox) -> None:
    """Over the wall limit is TO whether or not the grace lets it finish. (isolate applies -x
    to the CPU limit only; cellbox also to the wall limit: only the common ground is pinned.)"""
    proc, meta = box.run("/bin/sleep", "0.8", opts=("-w", "0.4", "-x", "2"))
    assert meta["status"] == "TO" and meta["exceeded"] == "wall-time", meta
    assert proc.returncode == 1
    proc, meta = box.run("/bin/sleep", "5", opts=("-w", "0.3", "-x", "0.3"))
    assert meta["status"] == "TO" and meta["killed"] == "1"
    assert 0.3 <= float(meta["time-wall"]) < 5, meta  # stopped before the sleep's end


def test_no_time_limit_given_means_none(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./burn", "1", "0.3", opts=("-t", "0"))
    assert_ok(proc, meta)


# -- memory ----------------------------------------------------------------------------------

@pytest.mark.cgroup2
def test_cgroup_memory_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./alloc", "200", opts=("--cg-mem=50M",))
    assert proc.returncode == 1
    assert meta["cg-oom-killed"] == "1"
    assert meta["exceeded"] == "memory"
    assert meta["status"] == "SG"
    assert meta["message"] == "Memory limit exceeded"
    assert meta["cellbox-status"] == "MEMORY_LIMIT"
    assert meta["exitsig"] == "9"
    assert int(meta["cg-mem"]) <= 51200 + 1024
    assert b"ok" not in proc.stdout


@pytest.mark.cgroup2
def test_cgroup_memory_not_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./alloc", "10", opts=("--cg-mem", "51200"))  # KiB by default
    assert_ok(proc, meta)
    assert proc.stdout.startswith(b"ok ")
    assert 10240 <= int(meta["cg-mem"]) < 51200


def test_address_space_hit_and_not_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./alloc", "200", opts=("-m", "100M"))
    assert proc.stdout == b"malloc failed\n"
    assert meta["status"] == "RE" and meta["exitcode"] == "3"
    assert "cg-oom-killed" not in meta
    proc, meta = run_capped(progs, "./alloc", "10", opts=("-m", "102400"))
    assert_ok(proc, meta)


@pytest.mark.cgroup2
def test_limits_of_one_run_do_not_stay_on_the_box(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./alloc", "10", opts=("--cg-mem=20M", "-p"))
    assert_ok(proc, meta)
    proc, meta = run_capped(progs, "./alloc", "60")
    assert_ok(proc, meta)
    proc, meta = run_capped(progs, "./forker", "2")  # back to the default of one process
    assert proc.stdout == b"forked=0 failed=2\n"


# -- processes -------------------------------------------------------------------------------

def test_default_is_one_process(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./forker", "3")
    assert proc.stdout == b"forked=0 failed=3\n"
    assert meta["processes-limit-hit"] == "1"


@pytest.mark.cgroup2
def test_fork_bomb_stops_at_the_limit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./forker", "50", opts=("-p5",))
    forked, failed = (int(kv.split("=")[1]) for kv in proc.stdout.decode().split())
    assert forked == 4 and failed == 46, proc.stdout  # 5 = the parent and 4 children
    assert meta["processes-limit-hit"] == "1"
    assert meta["cellbox-status"] == "OK"


def test_process_limit_not_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./forker", "3", opts=("--processes=5",))
    assert proc.stdout == b"forked=3 failed=0\n"
    assert_ok(proc, meta)
    assert "processes-limit-hit" not in meta


# -- open files, file size, stack ------------------------------------------------------------

@pytest.mark.cgroup2
def test_open_files_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./openfiles", "100", opts=("-n", "10"))
    assert proc.stdout == b"opened=7 errno=24\n"  # 10 minus stdin, stdout, stderr; EMFILE
    assert_ok(proc, meta)


def test_open_files_not_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./openfiles", "50", opts=("--open-files=100",))
    assert proc.stdout == b"opened=50 errno=0\n"


@pytest.mark.cgroup2
def test_file_size_hit(box: InitBox) -> None:
    proc, meta = run_capped(box, "/usr/bin/dd", "if=/dev/zero", "of=big", "bs=64k", "count=32",
                            opts=("-f", "1024"))
    assert proc.returncode == 1
    assert meta["exitsig"] == "25"  # SIGXFSZ
    assert meta["status"] == "SG"
    assert meta["exceeded"] == "fsize"
    assert meta["message"] == "File size limit exceeded"
    assert (box.work / "big").stat().st_size == 1 << 20


def test_file_size_not_hit(box: InitBox) -> None:
    proc, meta = run_capped(box, "/usr/bin/dd", "if=/dev/zero", "of=big", "bs=64k", "count=8",
                            opts=("--fsize=1M",))
    assert_ok(proc, meta)
    assert (box.work / "big").stat().st_size == 512 << 10


def test_output_bomb_to_a_file_is_capped(box: InitBox) -> None:
    proc, meta = run_capped(box, "/usr/bin/yes", opts=("-o", "out", "-f", "1024"))
    assert meta["exceeded"] == "fsize", meta
    assert meta["status"] == "SG"
    assert (box.work / "out").stat().st_size == 1 << 20
    assert proc.stdout == b""


def test_stderr_bomb_to_a_file_is_capped(box: InitBox) -> None:
    proc, meta = run_capped(box, "/bin/sh", "-c", "exec /usr/bin/yes >&2", opts=(
        "-r", "err", "-o", "out", "-f", "512"))
    assert meta["exceeded"] == "fsize", meta
    assert (box.work / "err").stat().st_size == 512 << 10
    assert proc.stderr.count(b"y\n") == 0


@pytest.mark.cgroup2
def test_stack_limit_hit_and_not_hit(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./recurse", "10000", opts=("-k", "1024"))  # ~10 MiB deep
    assert meta["status"] == "SG", meta
    assert meta["exitsig"] == "11"
    proc, meta = run_capped(progs, "./recurse", "10000", opts=("--stack=64M",))
    assert_ok(proc, meta)
    assert proc.stdout.startswith(b"ok")


# -- box storage quota -----------------------------------------------------------------------

@pytest.fixture
def quota_box() -> Iterator[InitBox]:
    """Box 160 with 1 MiB and 32 inodes of storage, always cleaned up."""
    with new_box("--quota=1024,32", box_id=160) as b:
        yield b


def test_quota_blocks(quota_box: InitBox) -> None:
    proc, meta = run_capped(quota_box, PY, "-c", """
import errno, json, os
out = {}
for path in ("/box/big", "/tmp/big"):
    written = 0
    try:
        with open(path, "wb", buffering=0) as f:
            for _ in range(64):  # 4 MiB at most
                written += f.write(b"x" * 65536)
        out[path] = "no error"
    except OSError as e:
        out[path] = errno.errorcode[e.errno]
    out[path + " bytes"] = written
    os.unlink(path)
v = os.statvfs("/box")
out["size"] = v.f_blocks * v.f_frsize
print(json.dumps(out))
""")
    got = json.loads(proc.stdout)
    assert got["/box/big"] == "ENOSPC" and got["/tmp/big"] == "ENOSPC", got
    assert got["/box/big bytes"] <= 1 << 20
    assert got["size"] == 1 << 20
    assert meta["cellbox-status"] == "OK"


def test_quota_inodes(quota_box: InitBox) -> None:
    proc, meta = run_capped(quota_box, PY, "-c", """
import errno, json
made = 0
try:
    for i in range(200):
        open(f"/box/f{i}", "w").close()
        made += 1
    print(json.dumps(["no error", made]))
except OSError as e:
    print(json.dumps([errno.errorcode[e.errno], made]))
""")
    err, made = json.loads(proc.stdout)
    assert err == "ENOSPC"
    assert 16 <= made < 32
