"""Filesystem escape: host files outside the binds, /proc traversal, chroot and mount tricks,
open_by_handle_at, device nodes, /sys, `..` through binds, read-only binds, setuid files.

Each hostile program prints whatever it manages to read; the test asserts that no canary
secret appears and that no canary changed. Positive controls run the same program on the host
(or with a weaker option) to show it does reach the canary there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.boxes import PY, InitBox, box_uid
from tests.support.hostile import (
    RUN_ATTACKS,
    CanaryProcess,
    HostCanary,
    dir_listing,
    make_canary,
)
from tests.support.proof import (
    PY_STARTED,
    STARTED,
    output,
    run_c,
    run_checked,
    run_on_host,
    run_py,
)

pytestmark = pytest.mark.security

READ_PATHS = """
import sys
for path in sys.argv[1:]:
    try:
        print(path, open(path, errors="replace").read())
    except OSError as e:
        print(path, e)
"""


@pytest.fixture
def root_canary() -> Iterator[HostCanary]:
    """A canary in the host's /root (a directory only root may enter)."""
    d = Path(tempfile.mkdtemp(prefix="cellbox-canary-", dir="/root"))
    yield make_canary(d)
    shutil.rmtree(d)


@pytest.mark.cgroup2
def test_host_files_outside_the_binds_are_invisible(box: InitBox, canary: HostCanary,
                                                    root_canary: HostCanary) -> None:
    """Open canaries in the host's /tmp and /root by their host paths: the box's /tmp is its
    own and /root is not bound, so neither is reached. Control: on the host it reads both."""
    paths = [str(canary.path), str(root_canary.path)]
    proc, _ = run_py(box, READ_PATHS, *paths)
    canary.assert_untouched(output(proc))
    root_canary.assert_untouched(output(proc))
    control = run_on_host([PY, "-c", READ_PATHS, *paths])
    assert canary.secret.encode() in control.stdout
    assert root_canary.secret.encode() in control.stdout


def test_proc_traversal_does_not_reach_the_host(
        box: InitBox, canary: HostCanary,
        canary_process: Callable[..., CanaryProcess]) -> None:
    """Walk /proc towards the host: /proc/1/root, /proc/self/root/.., /proc/self/cwd/..,
    and a host process (running as the box's own uid) by its host pid: root, cwd, environ,
    cmdline, mem. No secret of the file or the process leaks; the process lives on.
    Control: on the host, as the same uid, the process's environ is readable."""
    host = canary_process(uid=box_uid(box.id))
    name = canary.path.name
    p = host.pid
    paths = [f"/proc/1/root{canary.path}", f"/proc/self/root/../../..{canary.path}",
             f"/proc/self/cwd/../../..{canary.path}", f"/proc/{p}/root{canary.path}",
             f"/proc/{p}/cwd/{name}", f"/proc/{p}/environ", f"/proc/{p}/cmdline",
             f"/proc/{p}/mem", "/proc/1/environ", "/proc/self/mountinfo"]
    proc, _ = run_py(box, READ_PATHS, *paths)
    canary.assert_untouched(output(proc))
    assert host.secret.encode() not in output(proc)
    assert host.alive()
    control = run_on_host([PY, "-c", READ_PATHS, f"/proc/{p}/environ"], uid=box_uid(box.id))
    assert host.secret.encode() in control.stdout


def test_chroot_escape(box: InitBox, canary: HostCanary,
                       sys_program: Callable[[str], Path]) -> None:
    """chroot into a subdirectory, chdir('..') out of it, chroot('.'); also through an fd on
    '/'. Then read the host canary by its host path: never reached."""
    proc, _ = run_c(box, sys_program("fs_chroot_escape"), str(canary.path))
    canary.assert_untouched(output(proc))
    assert b"chroot jail: -1" in proc.stdout, output(proc)  # no CAP_SYS_CHROOT


def host_mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def test_mount_tricks(box: InitBox, canary: HostCanary,
                      sys_program: Callable[[str], Path]) -> None:
    """mount proc, sysfs and tmpfs, bind '/', remount '/' writable, detach /proc, /usr and
    '/', pivot_root; then all of it again inside a new user and mount namespace. After each
    step read the host canary under every new mount: never reached. None of the program's
    mount points shows up on the host (the leak checker also looks)."""
    proc, _ = run_c(box, sys_program("fs_mount_tricks"), str(canary.path))
    canary.assert_untouched(output(proc))
    assert b"box mount proc=-1" in proc.stdout, output(proc)
    assert not host_mount_points() & {"/tmp/proc", "/tmp/sys", "/tmp/bind"}


def test_open_by_handle_at(box: InitBox, canary: HostCanary,
                           sys_program: Callable[[str], Path]) -> None:
    """The "shocker" escape: a file handle of the host canary (made on the host) opened with
    open_by_handle_at relative to a bind of the same filesystem (/usr). The box must not read
    it. Control: the same import on the host reads the secret."""
    exe = sys_program("fs_open_by_handle")
    handle = run_on_host([str(exe), "export", str(canary.path)])
    assert handle.returncode == 0, output(handle)
    htype, hexbytes = handle.stdout.decode().split()
    proc, _ = run_c(box, exe, "import", "/usr", htype, hexbytes)
    canary.assert_untouched(output(proc))
    control = run_on_host([str(exe), "import", "/usr", htype, hexbytes])
    assert canary.secret.encode() in control.stdout, output(control)


def test_device_nodes_and_raw_disk(box: InitBox, canary_dir: Path,
                                   sys_program: Callable[[str], Path]) -> None:
    """mknod the host disk's block device (and /dev/mem) in /box, /tmp, /dev/shm, /dev and a
    read-write bind of a host directory, then open it and the usual disk names. No node is
    made (no CAP_MKNOD; nodev), so none appears in the host directory. Control: root on the
    host makes the node with the same program."""
    dev = os.stat("/").st_dev
    exe = sys_program("fs_raw_disk")
    args = [str(os.major(dev)), str(os.minor(dev))]
    before = dir_listing(canary_dir)
    proc, _ = run_c(box, exe, *args, "disk", "/tmp/disk", "/dev/shm/disk", "/dev/disk",
                    "/data/disk", opts=(f"--dir=/data={canary_dir}:rw",))
    assert b": 0" not in proc.stdout and b"OPENED" not in proc.stdout, output(proc)
    assert dir_listing(canary_dir) == before
    control = run_on_host([str(exe), *args, str(canary_dir / "disk")])
    assert f"mknod {canary_dir / 'disk'}: 0".encode() in control.stdout, output(control)


CGROUP_ATTACK = """
import os, sys
host = sys.argv[1]  # the host cgroup's path
for path in (host, "/proc/1/root" + host):
    for f, value in (("cgroup.procs", str(os.getpid())), ("tasks", str(os.getpid())),
                     ("pids.max", "max")):
        try:
            open(os.path.join(path, f), "w").write(value)
            print("WROTE", path, f)
        except OSError as e:
            print(path, f, e)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs("/tmp/cg", exist_ok=True)
print("mount cgroup", libc.mount(b"cgroup", b"/tmp/cg", b"cgroup", 0, b"pids"))
print("mount sysfs", libc.mount(b"sysfs", b"/tmp/cg", b"sysfs", 0, None))
print("sys", os.path.exists("/sys"), os.listdir("/sys") if os.path.exists("/sys") else None)
"""


@pytest.mark.cgroup2
def test_sys_and_host_cgroups_are_out_of_reach(box: InitBox, canary_cgroup: Path) -> None:
    """/sys is not mounted: the program tries to join, or raise the limit of, a host cgroup
    whose files are world-writable (so only the sandbox stands in the way), directly and via
    /proc/1/root, and to mount cgroup and sysfs. The host cgroup keeps no task and pids.max 7."""
    proc, _ = run_py(box, CGROUP_ATTACK, str(canary_cgroup))
    assert b"WROTE" not in proc.stdout, output(proc)
    assert (canary_cgroup / "cgroup.procs").read_text() == ""
    assert (canary_cgroup / "pids.max").read_text().strip() == "7"


DOTDOT = """
import os, sys
top = sys.argv[1]  # the host directory whose pub/ subdirectory is bound at /data
paths = ["/data/../canary", "/data/../../canary", "/data/.." + top + "/canary",
         "/data/../../../.." + top + "/canary", top + "/canary"]
fd = os.open("/data", os.O_RDONLY | os.O_DIRECTORY)
try:
    up = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    paths.append(f"/proc/self/fd/{up}/canary")
    print("openat ..:", os.listdir(up))
except OSError as e:
    print(e)
os.symlink("/data/..", "/box/up")
paths.append("/box/up/canary")
for p in paths:
    try:
        print(p, open(p).read())
    except OSError as e:
        print(p, e)
"""


def test_dotdot_through_a_bind_stays_inside(box: InitBox, canary_dir: Path) -> None:
    """With only <dir>/pub bound at /data, climb out with '..' in paths, openat(fd, '..') and a
    link to /data/..: the world-readable canary next to pub/ is never read."""
    (canary_dir / "pub").mkdir()
    readable = make_canary(canary_dir, "canary", 0o644)
    proc, _ = run_py(box, DOTDOT, str(canary_dir), opts=(f"--dir=/data={canary_dir}/pub",))
    readable.assert_untouched(output(proc))


RO_ATTACK = """
import os
p = "/data/canary"
attacks = [
    ("write", lambda: open(p, "a").write("pwned")),
    ("truncate", lambda: os.truncate(p, 0)),
    ("chmod", lambda: os.chmod(p, 0o777)),
    ("utime", lambda: os.utime(p, (0, 0))),
    ("rename", lambda: os.rename(p, "/data/moved")),
    ("unlink", lambda: os.unlink(p)),
    ("create", lambda: open("/data/new", "w").write("pwned")),
]
""" + RUN_ATTACKS


def test_read_only_bind_cannot_be_changed(box: InitBox, canary_dir: Path) -> None:
    """A world-writable canary in a read-only bind: write, truncate, chmod, utime, rename,
    unlink, create a sibling. Nothing changes on the host. Control: with :rw the same
    program does change it."""
    writable = make_canary(canary_dir, "canary", 0o666)
    before = dir_listing(canary_dir)
    proc, _ = run_py(box, RO_ATTACK, opts=(f"--dir=/data={canary_dir}",))
    writable.assert_untouched(output(proc))
    assert dir_listing(canary_dir) == before
    run_py(box, RO_ATTACK, opts=(f"--dir=/data={canary_dir}:rw",))
    assert dir_listing(canary_dir) != before


def test_setuid_root_binary_in_a_bind(box: InitBox, canary_dir: Path, canary: HostCanary,
                                      sys_program: Callable[[str], Path]) -> None:
    """A setuid-root program, bound read-write with the root-only canary, appends to the
    canary. In the box it stays the box user (nosuid, no_new_privs): canary unchanged.
    Control: on the host, run by an unprivileged uid, it does append."""
    suid = canary_dir / "suid_writer"
    shutil.copy(sys_program("fs_setuid_writer"), suid)
    os.chown(suid, 0, 0)
    suid.chmod(0o4755)
    proc, _ = run_checked(box, "/data/suid_writer", "/data/canary",
                          opts=(f"--dir=/data={canary_dir}:rw",))
    canary.assert_untouched(output(proc))
    assert f"euid {box_uid(box.id)}".encode() in proc.stdout, output(proc)
    control = run_on_host([str(suid), str(canary.path)], uid=box_uid(box.id))
    assert b"euid 0" in control.stdout, output(control)
    assert canary.path.read_text().endswith("pwned\n")


HARDLINK = """
import os
for src, dst in (("/data/canary", "/box/hard"), ("/data/canary", "/data/hard"),
                 ("/data/canary", "/tmp/hard")):
    try:
        os.link(src, dst)
        print("LINKED", src, dst)
    except OSError as e:
        print(src, dst, e)
"""


def test_hard_links_to_a_host_file(box: InitBox, canary_dir: Path, canary: HostCanary) -> None:
    """Hard-link a root-only canary of a read-write bind into /box, /tmp and next to itself,
    hoping the host's chown of box files hits the canary's inode. Refused (other filesystem,
    protected_hardlinks); the canary keeps its owner and link count through the runs."""
    opts = (f"--dir=/data={canary_dir}:rw", "--special-files")
    proc, _ = run_py(box, HARDLINK, opts=opts)
    box.run("/bin/true", opts=opts)  # the host chowns the box before and after this run
    canary.assert_untouched(output(proc))
    assert b"LINKED" not in proc.stdout, output(proc)


FD_PROBE = """
import os
for fd in range(3, 256):
    try:
        os.fstat(fd)
    except OSError:
        continue
    for path in ("canary", f"/proc/self/fd/{fd}/canary"):
        try:
            f = open(path) if "/" in path else open(os.open(path, os.O_RDONLY, dir_fd=fd))
            print(fd, path, f.read())
        except OSError as e:
            print(fd, path, e)
"""


def test_host_directory_fd_leaked_by_the_caller(box: InitBox, canary_dir: Path) -> None:
    """The caller (a judge) leaks an open fd of a host directory into cellbox. The program
    scans its fds and opens a world-readable canary relative to each: every fd beyond stdio
    is closed before the program starts. Control: with --inherit-fds it is read."""
    readable = make_canary(canary_dir, "canary", 0o644)
    fd = os.open(canary_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        def run(*opts: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run([sys.executable, "-m", "cellbox", "-b", str(box.id), *opts,
                                   "--run", "--", PY, "-c", PY_STARTED + FD_PROBE],
                                  pass_fds=(fd,), capture_output=True, timeout=60)
        probed = run()
        assert STARTED in probed.stderr, output(probed)
        readable.assert_untouched(output(probed))
        assert readable.secret.encode() in run("--inherit-fds").stdout
    finally:
        os.close(fd)


SYSCTL = """
import sys
for path, value in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        with open(path, "w") as f:
            f.write(value)
        print("WROTE", path)
    except OSError as e:
        print(path, e)
"""


def test_proc_sys_and_sysrq_writes(box: InitBox) -> None:
    """/proc is mounted read-write in the box: write the UTS names (a canary value; the host's
    must not change) and, with their current values so that nothing changes even if the
    sandbox failed, core_pattern, modprobe, panic and the sysrq trigger ('h' only prints
    help)."""
    host_names = (socket.gethostname(), Path("/proc/sys/kernel/domainname").read_text())
    args = ["/proc/sys/kernel/hostname", "pwned", "/proc/sys/kernel/domainname", "pwned",
            "/proc/sysrq-trigger", "h"]
    for name in ("core_pattern", "modprobe", "panic"):
        path = Path("/proc/sys/kernel") / name
        if path.exists():
            args += [str(path), path.read_text()]
    proc, _ = run_py(box, SYSCTL, *args)
    assert b"WROTE" not in proc.stdout, output(proc)
    assert (socket.gethostname(), Path("/proc/sys/kernel/domainname").read_text()) == host_names
