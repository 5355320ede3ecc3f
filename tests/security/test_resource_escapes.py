"""Resources a box could take outside its limits: kernel socket buffers beyond --cg-mem,
machine-wide AIO contexts, and files in /dev/shm beyond the box's disk quota. Every bomb
here is capped well below what would hurt the machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.boxes import InitBox, cellbox, init_next_box
from tests.support.hostile import assert_no_channel
from tests.support.proof import ATTACK_STARTED as STARTED
from tests.support.proof import output, run_attack, run_py


pytestmark = pytest.mark.security

MiB = 1 << 20

# Socket buffers held in the kernel, measured by the program itself with SO_MEMINFO (the
# socket's receive allocation and send queue, in the kernel's own accounting).
HOLD = """
import socket, struct, sys
SO_MEMINFO, CAP = 55, int(sys.argv[2]) << 20

def held(*socks):
    total = 0
    for s in socks:
        info = struct.unpack("9I", s.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))
        total += info[0] + info[5]  # rmem_alloc + wmem_queued
    return total

total, socks = 0, []  # socks: kept open, so that their buffers stay held

def fill_tcp():
    global total
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    chunk = b"x" * 65536
    while len(socks) < 56 and total < CAP:
        try:
            c = socket.create_connection(server.getsockname())
            a, _ = server.accept()
        except OSError:
            break
        socks.extend((c, a))
        c.setblocking(False)
        try:
            while True:  # until both ends' buffers are full
                c.send(chunk)
        except OSError:
            pass
        total += held(c, a)

def fill_udp():
    global total
    for _ in range(54):
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
        r.bind(("127.0.0.1", 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        for _ in range(256):  # more than the receive buffer takes: the rest is dropped
            try:
                s.sendto(b"y" * 8192, r.getsockname())
            except OSError:
                break
        s.close()
        socks.append(r)
        total += held(r)
        if total >= CAP:
            return

{"tcp": fill_tcp, "udp": fill_udp}[sys.argv[1]]()
print("held", total >> 20, "MiB")
"""


def held_mib(out: str) -> int:
    return int(out.split("held ", 1)[1].split()[0])


@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_loopback_socket_buffers_stay_within_cg_mem(box: InitBox, kind: str) -> None:
    """Loopback send and receive buffers are kernel memory the program holds for as long as
    it likes: they must count against --cg-mem (cgroup v1 keeps them apart, in
    memory.kmem.tcp, which must be limited too)."""
    out = run_attack(box, HOLD, kind, "64", opts=("--cg-mem=16384", "--open-files=128",
                                                  "--time=60", "--wall-time=120"), timeout=180)
    # The kernel charges socket memory past a full limit rather than drop a packet in
    # flight (and then refuses more): a little over the limit, never a multiple of it.
    assert held_mib(out) < 24, out


def test_unix_socket_buffers_count_against_cg_mem(box: InitBox) -> None:
    """The sibling with no network: unix socket pairs filled and never read. Their buffers
    are charged to the memory cgroup itself, so the run meets its memory limit."""
    proc, meta = run_py(box, f"print({STARTED!r}, flush=True)\n" + """
import socket, struct
socks = []
for _ in range(60):  # capped: 60 x 16 MiB of send buffer at most
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 24)
    a.setblocking(False)
    try:
        while True:
            a.send(b"u" * 65536)
    except OSError:
        pass
    socks += [a, b]
print("held", sum(struct.unpack("9I", s.getsockopt(socket.SOL_SOCKET, 55, 36))[2]
                  for s in socks) >> 20, "MiB")
""", opts=("--cg-mem=16384", "--open-files=200"))
    assert STARTED.encode() in proc.stdout, output(proc)
    assert meta.get("cellbox-status") == "MEMORY_LIMIT" or held_mib(proc.stdout.decode()) < 20, (
        output(proc), meta)


def test_aio_contexts_are_not_available(box: InitBox) -> None:
    """AIO contexts come from one machine-wide pool (fs.aio-max-nr): a box could take every
    one of them from the host, and the count (/proc/sys/fs/aio-nr) is visible to all."""
    out = run_attack(box, """
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def aio_nr():
    return int(open("/proc/sys/fs/aio-nr").read())
before, held = aio_nr(), []
for _ in range(4):  # capped: 4 x 4096 events, far below the host's limit
    ctx = ctypes.c_ulong(0)
    if libc.syscall(206, 4096, ctypes.byref(ctx)) != 0:
        print("io_setup", errno.errorcode[ctypes.get_errno()])
        break
    held.append(ctx)
print("reserved", aio_nr() - before)
for ctx in held:
    libc.syscall(207, ctx)
""")
    assert "io_setup ENOSYS" in out and "reserved 0" in out, out


def test_aio_count_is_no_channel(box: InitBox, box2: InitBox) -> None:
    assert_no_channel(box, box2, "aio", control_opts=("--syscalls=+io_setup",))


@pytest.fixture
def small_box() -> Iterator[InitBox]:
    """A box with 1 MiB and 64 inodes of storage."""
    b = init_next_box("--quota=1024,64")
    yield b
    cellbox("-b", str(b.id), "--cleanup", check=True)


SHM_FILL = """
import os, sys
where, written, made = sys.argv[1], 0, 0
for i in range(int(sys.argv[2])):  # capped by the test: at most 64 MiB, or 4096 files
    try:
        with open(f"{where}/f{i}", "wb") as f:
            f.write(b"z" * int(sys.argv[3]))
            f.flush()
            os.fsync(f.fileno())
        written += int(sys.argv[3])
        made += 1
    except OSError as e:
        print("stopped:", e)
        break
print("written", written >> 10, "KiB in", made, "files")
"""


@pytest.mark.parametrize("where", ["/dev/shm", "/tmp", "/box"])
def test_box_storage_is_within_the_quota_everywhere(small_box: InitBox, where: str) -> None:
    """/dev/shm is writable like /box and /tmp, and no larger than the box's disk quota,
    whatever --fsize and --mem allow per file."""
    out = run_attack(small_box, SHM_FILL, where, "64", str(MiB - 4096),
                     opts=("--fsize=1024", "--mem=65536", "--open-files=16"))
    assert int(out.split("written ", 1)[1].split()[0]) <= 1024, out


def test_shm_files_count_against_the_inode_quota(small_box: InitBox) -> None:
    out = run_attack(small_box, SHM_FILL, "/dev/shm", "4096", "0")
    assert int(out.split(" in ", 1)[1].split()[0]) < 64, out


def test_posix_shared_memory_is_within_the_quota(small_box: InitBox) -> None:
    """shm_open's way into /dev/shm (glibc opens a file there), with the pages reserved by
    posix_fallocate, as a program does before it maps them (a plain write through the map of
    a full tmpfs would be SIGBUS)."""
    out = run_attack(small_box, """
import os
made = 0
for i in range(32):  # capped: 32 MiB
    fd = os.open(f"/dev/shm/cellbox-{i}", os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        os.posix_fallocate(fd, 0, 1 << 20)
    except OSError as e:
        print("stopped:", e)
        break
    finally:
        os.close(fd)
    made += 1
print("segments", made)
""")
    assert int(out.split("segments ", 1)[1].split()[0]) <= 1, out


PTYS = """
import os
def count():
    try:
        return open("/proc/sys/kernel/pty/nr").read().strip() or "empty"
    except OSError as e:
        return e.strerror
before, held = count(), []
for _ in range(100):  # capped: 100 ptys, far below the machine's 4096
    try:
        held.append(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))
    except OSError as e:
        print("stopped:", e.strerror)
        break
print("opened", len(held), "count", before, "->", count())
"""


def test_ptys_are_bounded_and_their_count_is_hidden(box: InitBox) -> None:
    """With /dev/pts asked for, ptys come from one machine-wide pool (kernel.pty.max) whose
    count, /proc/sys/kernel/pty/nr, another box would read exactly: a box gets at most 64,
    and does not see the count."""
    out = run_attack(box, PTYS, opts=("--dir=/dev/pts=devpts:fs", "--open-files=128"))
    opened = int(out.split("opened ", 1)[1].split()[0])
    assert opened <= 64, out
    counts = out.split(" count ", 1)[1].split(" -> ")
    assert not any(c.strip().isdigit() for c in counts), out
