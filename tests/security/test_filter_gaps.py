"""Syscalls that reach kernel-wide state or kernel code the socket-family check was meant to
keep out: socketpair, SOCK_PACKET, sync and syncfs, the page-cache probes (mincore,
cachestat) and AIO contexts (io_setup). Each denial is seen from inside a box (the errno),
and where the kernel would give the same errno without the filter (a missing capability),
from a root process on the host under the box's compiled filter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellbox import policy
from cellbox.linux import seccomp
from tests.support.boxes import InitBox
from tests.support.proof import run_attack
from tests.support.skips import lacks


pytestmark = pytest.mark.security

ERRNO_OF = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def call(nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return "OK" if r >= 0 else errno.errorcode[ctypes.get_errno()]
"""

# socketpair(2) of every family the socket() check refuses (and a few it allows).
SOCKETPAIR = ERRNO_OF + """
fds = (ctypes.c_int * 2)()
for name, family, kind, proto in [
        ("unix", 1, 1, 0), ("unix_dgram", 1, 2, 0), ("vsock", 40, 1, 0),
        ("vsock_highbits", (1 << 32) | 40, 1, 0), ("netlink_audit", 16, 3, 9),
        ("netlink_netfilter", 16, 3, 12), ("netlink_sock_diag", 16, 3, 4),
        ("netlink_route", 16, 3, 0), ("inet", 2, 1, 0), ("packet", 17, 3, 0),
        ("alg", 38, 5, 0), ("tipc", 30, 2, 0), ("unix_highbits", (1 << 32) | 1, 1, 0)]:
    print(name, call(53, family, kind, proto, fds))
"""


def results(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines()[1:] if " " in line)


def test_socketpair_is_held_to_unix_sockets(box: InitBox) -> None:
    got = results(run_attack(box, SOCKETPAIR))
    assert got.pop("unix") == got.pop("unix_dgram") == "OK"
    assert set(got.values()) == {"EPERM"}, got  # the filter answered, not the family's code


def test_socketpair_check_is_lifted_by_plus_socketpair(box: InitBox) -> None:
    got = results(run_attack(box, SOCKETPAIR, opts=("--syscalls=+socketpair",)))
    assert got["vsock"] != "EPERM" and got["netlink_audit"] != "EPERM", got


# Socket types and calls whose denial a capability check would also give: run as root on the
# host, under the default policy's filters, so that only the filter can refuse them.
UNDER_FILTER = """
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if sys.argv[1] == "filtered":
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    for blob in sys.argv[2:]:
        code = ctypes.create_string_buffer(bytes.fromhex(blob))
        prog = Prog(len(bytes.fromhex(blob)) // 8, ctypes.addressof(code))
        assert libc.syscall(317, 1, 0, ctypes.byref(prog)) == 0  # seccomp(SET_MODE_FILTER)
for name, family, kind in [("inet_sock_packet", 2, 10), ("inet_sock_packet_nonblock", 2, 10 | 0o4000),
                           ("inet6_sock_packet", 10, 10), ("unix_sock_packet", 1, 10)]:
    fd = libc.syscall(41, ctypes.c_long(family), ctypes.c_long(kind), ctypes.c_long(0x300))
    print(name, "OK" if fd >= 0 else errno.errorcode[ctypes.get_errno()])
    if fd >= 0:
        os.close(fd)
"""


def under_the_filter(filtered: bool) -> dict[str, str]:
    blobs = [f.hex() for f in seccomp.compile_filters(policy.default_policy())]
    argv = [sys.executable, "-c", UNDER_FILTER, "filtered" if filtered else "bare"]
    proc = subprocess.run(argv + (blobs if filtered else []), capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    return dict(line.split(" ", 1) for line in proc.stdout.decode().splitlines())


def test_sock_packet_is_refused_by_the_filter_itself() -> None:
    """socket(AF_INET, SOCK_PACKET) is the obsolete way to a packet socket: the kernel turns
    it into AF_PACKET. In a box only the missing CAP_NET_RAW stopped it; the filter must."""
    assert under_the_filter(False)["inet_sock_packet"] == "OK"  # root, no filter: made
    got = under_the_filter(True)
    assert set(got.values()) == {"EPERM"}, got


def test_sock_packet_in_a_box(box: InitBox) -> None:
    got = results(run_attack(box, ERRNO_OF + """
for name, family, kind in [("inet", 2, 10), ("inet6", 10, 10), ("unix", 1, 10)]:
    print(name, call(41, family, kind, 0x300))
"""))
    assert set(got.values()) == {"EPERM"}, got


SYNC = ERRNO_OF + """
fd = os.open("/usr", os.O_RDONLY | os.O_DIRECTORY)
print("sync", call(162))
print("syncfs_usr", call(306, fd))
print("syncfs_box", call(306, os.open("/box", os.O_RDONLY | os.O_DIRECTORY)))
with open("/box/f", "wb") as f:
    f.write(b"x" * 4096)
    print("fsync_own", call(74, f.fileno()))
"""


def test_sync_and_syncfs_are_denied(box: InitBox) -> None:
    """sync() flushes every filesystem of the machine, syncfs() a host filesystem bound into
    the box: a box could keep the host's disks busy, and time it. The box's own storage is a
    tmpfs, where neither has anything to do; fsync of one's own file stays allowed."""
    got = results(run_attack(box, SYNC))
    assert got == {"sync": "EPERM", "syncfs_usr": "EPERM", "syncfs_box": "EPERM",
                   "fsync_own": "OK"}, got


def test_sync_comes_back_with_plus_sync(box: InitBox) -> None:
    got = results(run_attack(box, SYNC, opts=("--syscalls=+sync,+syncfs",)))
    assert got["sync"] == got["syncfs_usr"] == "OK", got


CACHESTAT = ERRNO_OF + """
with open("/box/f", "wb") as f:
    f.write(b"x" * 65536)
fd = os.open("/box/f", os.O_RDWR)
rng = (ctypes.c_uint64 * 2)(0, 65536)
stat = (ctypes.c_uint64 * 5)()
print("cachestat_own", call(451, fd, rng, stat, 0))
print("cachestat_usr", call(451, os.open(sys.executable, os.O_RDONLY), rng, stat, 0))
"""


def test_cachestat_is_denied(box: InitBox) -> None:
    """cachestat(2) tells which pages of a file are cached: a probe, with no use in a run.
    The kernel answers for files the caller may write (a file bound read-write into two boxes
    would carry a channel); the filter refuses it for every file."""
    got = results(run_attack(box, CACHESTAT))
    assert got == {"cachestat_own": "EPERM", "cachestat_usr": "EPERM"}, got


MINCORE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
pages = 64
f = open(sys.argv[1], "rb")
addr = libc.mmap(None, ctypes.c_size_t(pages * 4096), 1, 1, f.fileno(), ctypes.c_long(0))
vec = (ctypes.c_ubyte * pages)()
assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(pages * 4096), vec) == 0
print("resident", sum(b & 1 for b in vec), "of", pages)
"""


@pytest.fixture
def evicted_file(canary_dir: Path) -> Path:
    """A 64-page file of the host's, readable by all, with none of its pages cached."""
    path = canary_dir / "cold"
    with open(path, "wb") as f:
        f.write(os.urandom(64 * 4096))
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    path.chmod(0o644)
    return path


def test_mincore_cannot_see_the_host_page_cache(box: InitBox, canary_dir: Path,
                                                evicted_file: Path) -> None:
    """mincore stays allowed (the JVM and others use it on their own memory): the kernel
    answers it truthfully only for anonymous memory and files the caller may write, and
    reports every page of any other file as resident. Control: root on the host, who may
    write the file, sees that its pages are not cached."""
    fs = subprocess.run(["stat", "-f", "-c", "%T", str(evicted_file)], capture_output=True,
                        text=True, check=True).stdout.strip()
    if fs == "tmpfs":
        lacks("a /tmp on a disk (a tmpfs's pages cannot leave the page cache)")
    host = subprocess.run([sys.executable, "-c", MINCORE, str(evicted_file)],
                          capture_output=True, timeout=30)
    assert host.stdout.decode().startswith("resident 0 of 64"), host
    out = run_attack(box, MINCORE, "/probe/cold", opts=(f"--dir=/probe={canary_dir}",))
    assert "resident 64 of 64" in out, out
