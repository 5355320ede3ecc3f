"""The warm pool (``cellbox.Pool``): runs reuse a box's init and root, and still no state
passes from one run to the next; a killed pool owner leaves boxes the repair path fixes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from cellbox import Box, Limits, Pool, Status, boxinit
from cellbox.chaos import uid_processes
from tests.support.boxes import FIRST_UID, NUM_BOXES

pytestmark = pytest.mark.pool


@pytest.fixture
def leftovers(c_program) -> Iterator[str]:  # noqa: ANN001
    """A directory rule that shows tests/programs/leftovers.c's binary at /progs (in a
    directory the box user may enter: pytest's own are root's alone)."""
    where = tempfile.mkdtemp(prefix="cellbox-test-progs-")
    os.chmod(where, 0o755)
    shutil.copy(c_program("leftovers"), where)
    yield f"/progs={where}"
    shutil.rmtree(where)


def test_no_channel_keeps_a_marker_for_the_next_run(leftovers: str):
    with Pool(size=1, dirs=[leftovers]) as pool:
        # Control: within one run, "check" finds every marker "make" left.
        made = pool.run(["/bin/sh", "-c", "/progs/leftovers make && /progs/leftovers check"],
                        limits=Limits(processes=4))
        assert made.status is Status.OK and made.stderr == b"", made
        assert made.stdout.decode().split() == [
            "made", "sysv-shm", "sysv-sem", "sysv-msg", "mqueue", "posix-shm", "box-file",
            "tmp-file", "listener"], made
        assert uid_processes(FIRST_UID, NUM_BOXES) == []  # the listener child is gone
        again = pool.run(["/progs/leftovers", "check"])
        assert again.status is Status.OK and again.stderr == b"", again  # checked them all
        assert again.stdout.decode().split() == []  # no marker left in any channel


@pytest.mark.cgroup2
def test_a_background_process_does_not_outlive_its_run():
    with Pool(size=1) as pool:
        r = pool.run(["/bin/sh", "-c", "sleep 1000 & sleep 1000 & echo started"],
                     limits=Limits(processes=4))
        assert r.status is Status.OK and r.stdout == b"started\n", r
        assert uid_processes(FIRST_UID, NUM_BOXES) == []
        r = pool.run(["/bin/sh", "-c", "ls /proc | grep -c '^[0-9]'"],
                     limits=Limits(processes=4))
        # init (pid 1, hidden: not the box user's), sh, and ls / grep: no sleep
        assert int(r.stdout) <= 3, r.stdout


@pytest.mark.cgroup2
def test_memory_and_cpu_of_a_run_are_not_charged_to_the_next():
    with Pool(size=1) as pool:
        hog = pool.run(["python3", "-c", "b = bytearray(100 << 20); import time\n"
                        "t = time.process_time()\nwhile time.process_time() - t < 0.5: pass"],
                       limits=Limits(time=10, memory=512 << 20))
        assert hog.status is Status.OK, hog
        assert hog.peak_memory > 100 << 20 and hog.cpu_time >= 0.5
        quiet = pool.run(["/bin/true"])
        assert quiet.status is Status.OK
        assert quiet.peak_memory < 20 << 20 and quiet.cpu_time < 0.5, quiet  # not the hog's


def test_runs_alternate_over_the_slots_and_limits_hold():
    with Pool(size=2) as pool:
        assert len(set(pool.box_ids)) == 2
        results = [pool.run(["/bin/sh", "-c", "cat in; cat >&2"], files={"in": str(i)},
                            stdin=f"e{i}", limits=Limits(processes=3)) for i in range(4)]
        assert [(r.stdout, r.stderr) for r in results] == [
            (str(i).encode(), f"e{i}".encode()) for i in range(4)]
        r = pool.run(["/bin/sleep", "10"], limits=Limits(wall_time=0.3))
        assert r.status is Status.WALL_TIME_LIMIT
        r = pool.run(["no-such-program"])
        assert r.status is Status.EXEC_ERROR and r.exit_code == 127
        assert "cannot execute no-such-program" in r.message
        assert all(pool.run(["/bin/true"]).ok for _ in range(2))  # both slots still serve


def test_a_dead_warm_init_is_replaced():
    with Pool(size=1) as pool:
        slot = pool._slots[0][1]
        assert slot.pid is not None
        os.kill(slot.pid, signal.SIGKILL)
        while _state(slot.pid) != "Z":  # dead, not yet reaped
            time.sleep(0.01)
        assert pool.run(["/bin/true"]).status is Status.OK
        assert slot.pid is not None and _state(slot.pid) != "Z"  # a new init


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


_OWNER = """
import json, sys, time
from cellbox import Pool
with Pool(size=2) as pool:
    pool.run(["/bin/true"])
    print(json.dumps(pool.box_ids), flush=True)
    time.sleep(120)
"""


def test_boxes_of_a_killed_pool_owner_are_repaired_and_reusable():
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    ids = json.loads(owner.stdout.readline())
    owner.kill()
    owner.wait()
    for box_id in ids:  # taking the lock repairs what the dead lease left
        with Box(box_id, wait=10) as box:
            assert box.run(["/bin/true"]).status is Status.OK
    assert uid_processes(FIRST_UID, NUM_BOXES) == []


# The traces a program without capabilities can leave in the box's network namespace, each
# alone (those without a packet are the hard ones): a socket in TIME_WAIT (the side that
# closes first keeps it), a UDP datagram, a listening socket in flight in a unix socket cycle
# (freed by the unix garbage collector only), an IPv6 flow label left to linger, an abstract
# unix name.
_NET_TRACES = {
    "time-wait": """
import socket
lis = socket.create_server(("127.0.0.1", 40124))
cli = socket.create_connection(("127.0.0.1", 40124))
srv, _ = lis.accept()
cli.close(); srv.close()
""",
    "udp": """
import socket
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 40125))
""",
    "in-flight": """
import socket
a, b = socket.socketpair()
held = socket.create_server(("127.0.0.1", 40126))
socket.send_fds(a, [b"x"], [b.fileno(), held.fileno()])
""",
    "flow-label": """
import socket, struct
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
req = struct.pack("=16sIBBHHHI", socket.inet_pton(socket.AF_INET6, "::1"),
                  socket.htonl(0x12345), 0, 1, 1, 0, 60, 0)  # GET, EXCL, CREATE, linger 60 s
s6.setsockopt(socket.IPPROTO_IPV6, 32, req)  # IPV6_FLOWLABEL_MGR
""",
    "abstract-unix": """
import socket
socket.socket(socket.AF_UNIX).bind("\\0cellbox-marker")
""",
}

# Prints every network trace it finds (nothing when the namespace is clean).
_NET_CHECK = """
import socket
def entries(name):
    try:
        with open("/proc/net/" + name) as f:
            return f.read().splitlines()[1:]
    except FileNotFoundError:
        return []
for name in ("tcp", "tcp6", "udp", "udp6", "unix", "ip6_flowlabel"):
    for line in entries(name):
        print(name, line)
for line in entries("dev")[1:]:  # two header lines
    dev, counters = line.split(":")
    if any(int(c) for c in counters.split()):
        print("dev", line)
for port in (40124, 40125, 40126):
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError as e:
        print("port", port, e)
"""


# Which network namespace a run is in: its cookie (SO_NETNS_COOKIE), which the kernel never
# reuses (the inode number of a namespace freed after one run may be a later run's).
_NETNS_COOKIE = ["python3", "-c", "import socket; print(socket.socket(socket.AF_UNIX)"
                 ".getsockopt(socket.SOL_SOCKET, 71, 8).hex())"]  # 71: SO_NETNS_COOKIE


@pytest.mark.parametrize("trace", sorted(_NET_TRACES))
def test_no_network_state_passes_to_the_next_run(trace: str):
    """Every run has a network namespace of its own: after each trace, the next run finds
    none, in a namespace no run had before."""
    with Pool(size=1) as pool:
        made = pool.run(["python3", "-c", _NET_TRACES[trace] + _NETNS_COOKIE[2]],
                        limits=Limits(processes=4))
        assert made.status is Status.OK and made.stdout.strip(), made
        check = pool.run(["python3", "-c", _NET_CHECK], limits=Limits(processes=4))
        assert check.status is Status.OK and check.stdout == b"", check  # no trace at all
        after = pool.run(_NETNS_COOKIE)
        assert after.status is Status.OK and after.stdout not in (b"", made.stdout), after


def test_dev_shm_is_new_for_every_run():
    """/dev/shm is mounted for each run in its own mount namespace: the first file a run makes
    there is numbered as in a new mount, and its mount time is the run's, whatever the run
    before did (made a file, listed it, or nothing)."""
    mounted_at = ["stat", "-c", "%z", "/dev/shm"]  # its ctime, to the ns: when it was mounted
    new_file = ["/bin/sh", "-c", "touch /dev/shm/y && stat -c %i /dev/shm/y && rm /dev/shm/y"]
    with Pool(size=1) as pool:
        times = [pool.run(mounted_at).stdout for _ in range(2)]
        inodes = [pool.run(new_file, limits=Limits(processes=3)).stdout for _ in range(2)]
        assert inodes[0] == inodes[1] != b"", inodes  # not one more than the run before's
        assert pool.run(["ls", "/dev/shm"]).stdout == b""
        times.append(pool.run(mounted_at).stdout)
    assert all(times) and len(set(times)) == 3, times


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_an_idle_warm_box_holds_only_its_next_runs_namespaces() -> None:
    """As root, a warm box's init makes no network, IPC or UTS namespace of its own: no
    program runs in one (each run's init makes the run's), so it would hold kernel memory for
    nothing. Between runs the box holds one of each: the next run's, made ahead."""
    host = {name: os.stat(f"/proc/self/ns/{name}").st_ino for name in ("net", "ipc", "uts")}
    with Pool(size=1) as pool:
        assert pool.run(["/bin/true"]).status is Status.OK
        inits = [p for p in _children(os.getpid())
                 if os.readlink(f"/proc/{p}/exe").startswith(boxinit.CACHE_DIR + "/")]
        assert len(inits) == 1, inits
        deadline = time.monotonic() + 10
        while len(_children(inits[0])) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the last run's init, being reaped
        (next_run,) = _children(inits[0])
        for name, own in host.items():
            held = {os.stat(f"/proc/{p}/ns/{name}").st_ino for p in (inits[0], next_run)}
            assert held - {own} == {os.stat(f"/proc/{next_run}/ns/{name}").st_ino}, name
