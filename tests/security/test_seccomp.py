"""The seccomp policy against hostile programs: one program per class of denied syscall.

Each test asserts the denial (the errno the policy promises) and the effect that matters:
no mount, no namespace, an intact canary in another process, an unchanged host clock, no key
left for a later run, no lock another box or the host can see. Runtimes (CPython, C, gcc,
Java, node) must keep working under the same filter.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.boxes import PY, new_box
from tests.support.proof import denied, hostile, parse_results
from tests.support.skips import lacks

pytestmark = pytest.mark.security



# -- one hostile program per class of denied syscall ------------------------------------------

def test_mount_and_root_changes_are_denied(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_mount")
    denied(got, ["mount", "bind", "remount", "umount2", "pivot_root", "chroot", "fsopen",
                 "open_tree", "mount_setattr"])
    assert got["hostile_mount_visible"] == "no"
    with open("/proc/self/mounts") as f:
        assert "cellbox-hostile" not in f.read()


def test_it_is_the_filter_that_refuses_mounts(box, sys_program) -> None:  # noqa: ANN001
    # The same program with the mount calls allowed: the kernel gets to look the (missing)
    # targets up and says ENOENT, so the EPERM above came from the filter, not only from the
    # missing capability.
    got, meta = hostile(box, sys_program, "sys_mount",
                        opts=("--syscalls=+mount,+umount2,+chroot",))
    assert (got["mount"], got["bind"], got["umount2"], got["chroot"]) == ("ENOENT",) * 4
    assert meta["cellbox-seccomp-weakened"] == "chroot,mount,umount2"


def test_namespaces_cannot_be_created_or_joined(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_namespaces", opts=("--processes=4",))
    kinds = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"]
    denied(got, [f"unshare_{k}" for k in kinds] + [f"clone_{k}" for k in kinds]
           + ["clone_user_highbits", "setns"])
    assert got["clone3"] == "ENOSYS"  # so that glibc falls back to clone, whose flags we see
    assert got["plain_fork"] == "OK"
    assert got["namespaces_changed"] == "no"


def test_other_processes_memory_is_out_of_reach(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_ptrace", opts=("--processes=4",))
    denied(got, ["ptrace_attach", "ptrace_seize", "process_vm_readv", "process_vm_writev",
                 "kcmp", "pidfd_getfd", "ptrace_traceme"])
    assert got["child_canary"] == "intact"


def test_kernel_attack_surface_is_denied(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_kernel")
    denied(got, ["bpf", "perf_event_open", "userfaultfd", "acct", "syslog", "iopl", "ioperm",
                 "quotactl", "modify_ldt", "lookup_dcookie", "fanotify_init", "mbind",
                 "uselib", "inotify_init1", "dnotify"])
    denied(got, ["io_uring_setup", "io_uring_enter", "io_uring_register"], "ENOSYS")


def test_host_wide_state_cannot_change(box, sys_program) -> None:  # noqa: ANN001
    swaps = Path("/proc/swaps").read_text()
    clock_offset = time.time() - time.monotonic()
    got, _ = hostile(box, sys_program, "sys_system")
    # With invalid arguments an unfiltered kernel answers EINVAL for several of these:
    # EPERM everywhere shows that the filter answered first.
    denied(got, ["init_module", "finit_module", "delete_module", "kexec_load",
                 "kexec_file_load", "reboot", "swapon", "swapoff", "settimeofday",
                 "clock_settime", "adjtimex", "clock_adjtime"])
    assert Path("/proc/swaps").read_text() == swaps
    assert abs(time.time() - time.monotonic() - clock_offset) < 0.5


def test_file_handles_cannot_bypass_the_mount_namespace(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_handles")
    denied(got, ["name_to_handle_at", "open_by_handle_at"])


def test_keyring_is_denied(box, sys_program) -> None:  # noqa: ANN001
    token = f"cellbox-canary-{os.getpid()}-{time.monotonic_ns()}"
    got, _ = hostile(box, sys_program, "sys_keyring", "add", token)
    denied(got, ["add_key", "request_key", "keyctl_join", "keyctl_get"])


def test_keyring_allowed_leaves_nothing_for_a_later_run(box, sys_program) -> None:  # noqa: ANN001
    """With the keyring calls allowed, a run plants a key in the uid's user keyring (and the
    kernel takes it); a later run of the same uid, allowed to search, finds none."""
    token = f"cellbox-canary-{os.getpid()}-{time.monotonic_ns()}"
    allowed = ("--syscalls=+keyctl,+add_key,+request_key",)
    try:
        got, meta = hostile(box, sys_program, "sys_keyring", "add", token, opts=allowed)
        assert got["add_key"] == got["request_key"] == got["keyctl_get"] == "OK", got
        assert meta["cellbox-seccomp-weakened"] == "add_key,keyctl,request_key"
        later, _ = hostile(box, sys_program, "sys_keyring", "find", token,
                           opts=("--syscalls=+keyctl",))
    finally:
        hostile(box, sys_program, "sys_keyring", "clear", token, opts=allowed)
    assert later["search"] == "ENOKEY", later


def test_socket_families_beyond_unix_inet_and_route_are_denied(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_socket")
    denied(got, ["vsock", "vsock_highbits", "inet_highbits", "packet", "alg", "bluetooth", "key",
                 "appletalk", "netlink_uevent", "netlink_audit"])
    for allowed in ("netlink_route", "unix", "inet", "inet6"):
        assert got[allowed] == "OK", (allowed, got)


def test_tiocsti_cannot_push_input_into_a_terminal(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_tiocsti", opts=("--dir=/dev/pts=devpts:fs",))
    assert got["controlling_tty"] == "OK"  # the pty is the program's own terminal...
    denied(got, ["tiocsti", "tiocsti_highbits", "tioclinux"])  # ...and still refused
    assert got["tcgetattr"] == "OK"
    assert got["injected"] == "no"


@pytest.mark.cgroup2
def test_non_native_abis_get_enosys(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_arch")
    denied(got, ["i386_getpid", "x32_getpid", "beyond_table"], "ENOSYS")
    assert got["native_getpid"] == "OK"


def test_personality_only_with_default_values(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_personality")
    denied(got, ["no_randomize", "read_implies_exec", "mmap_page_zero", "highbits"])
    assert (got["query"], got["linux"], got["linux32"]) == ("OK", "OK", "OK")


# -- advisory locks on files shared between boxes ---------------------------------------------

def test_locks_on_a_shared_read_only_file_are_invisible(
        box, sys_program, tmp_path: Path) -> None:  # noqa: ANN001
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "data").write_text("shared by two boxes\n")
    (shared / "data").chmod(0o644)
    tmp_path.chmod(0o755)
    bind = f"--dir=/shared={shared}"
    shutil.copy(sys_program("sys_locks"), box.work / "sys_locks")
    with new_box() as other:
        shutil.copy(sys_program("sys_locks"), other.work / "sys_locks")
        holder = subprocess.Popen(
            [sys.executable, "-m", "cellbox", "-b", str(box.id), bind, "--run", "--",
             "./sys_locks", "hold", "/shared/data"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            lines = _read_until(holder, b"locked")
            held = parse_results(lines)
            assert (held["flock"], held["setlk"], held["ofd_setlk"]) == ("OK", "OK", "OK")
            # The host can take an exclusive lock: the box's locks had no effect...
            with open(shared / "data", "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            # ...and the other box, running at the same time, sees none.
            got, _ = hostile(other, sys_program, "sys_locks", "probe", "/shared/data",
                             opts=(bind,))
            assert got["getlk_sees"] == "none"
            assert got["flock_ex_nb"] == "OK"
        finally:
            (box.work / "release").write_text("")
            holder.wait(timeout=60)
    assert holder.returncode == 0, holder.stderr.read()


def _read_until(proc: subprocess.Popen[bytes], marker: bytes) -> bytes:
    """Lines of the program's stdout up to the marker line (or EOF)."""
    out = b""
    assert proc.stdout is not None
    for line in proc.stdout:
        out += line
        if line.strip() == marker:
            break
    return out


# -- runtimes still work under the filter -----------------------------------------------------

def _jvm() -> Path | None:
    java = shutil.which("java")
    return Path(os.path.realpath(java)).parent if java else None


def test_python_runs_under_the_filter(box) -> None:  # noqa: ANN001
    code = ("import socket, subprocess, sqlite3, tempfile, threading\n"
            "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); s.close()\n"
            "db = sqlite3.connect('/tmp/db'); db.execute('create table t (x)'); db.commit()\n"
            "print(subprocess.run(['/bin/echo', 'child'], capture_output=True).stdout.decode())\n"
            "print('hello python')\n")
    proc, meta = box.run(PY, "-c", code, opts=("--processes=8",))
    assert meta["cellbox-status"] == "OK", (meta, proc.stderr)
    assert proc.stdout.decode().split() == ["thread", "child", "hello", "python"]


def test_gcc_and_c_run_under_the_filter(box) -> None:  # noqa: ANN001
    box.put("hello.c", '#include <stdio.h>\nint main(void){puts("hello c");return 0;}\n')
    proc, meta = box.run("/usr/bin/gcc", "-O2", "-o", "hello", "hello.c",
                         opts=("--processes=8", "--env=PATH=/usr/bin:/bin"))
    assert meta["cellbox-status"] == "OK", (meta, proc.stderr)
    proc, meta = box.run("./hello")
    assert proc.stdout == b"hello c\n"


def test_java_runs_under_the_filter(box, tmp_path: Path) -> None:  # noqa: ANN001
    jvm = _jvm()
    if jvm is None or not (jvm / "javac").exists():
        lacks("a JDK (scripts/bootstrap.sh installs one)")
    (tmp_path / "Main.java").write_text(
        "public class Main { public static void main(String[] a) throws Exception {\n"
        "  Thread t = new Thread(() -> System.out.println(\"thread\")); t.start(); t.join();\n"
        "  java.nio.file.Files.writeString(java.nio.file.Path.of(\"/tmp/j\"), \"x\");\n"
        "  try (var s = new java.net.ServerSocket(0, 1,"
        " java.net.InetAddress.getLoopbackAddress())) {}\n"
        "  System.out.println(\"hello java\"); } }\n")
    subprocess.run([str(jvm / "javac"), "-d", str(tmp_path), str(tmp_path / "Main.java")],
                   check=True)
    shutil.copy(tmp_path / "Main.class", box.work / "Main.class")
    proc, meta = box.run(str(jvm / "java"), "-Xmx128m", "-cp", "/box", "Main",
                         opts=("--processes=64", "--wall-time=60", "--env=HOME=/tmp"))
    assert meta["cellbox-status"] == "OK", (meta, proc.stderr)
    assert proc.stdout.decode().split() == ["thread", "hello", "java"]


def test_node_runs_under_the_filter(box) -> None:  # noqa: ANN001
    node = shutil.which("node")
    if node is None:
        lacks("node (scripts/bootstrap.sh installs it)")
    box.put("m.js", "const fs = require('fs'); fs.writeFileSync('/tmp/n', 'x');\n"
                    "require('http').createServer().listen(0, '127.0.0.1', function () {\n"
                    "  console.log('hello node'); this.close(); });\n")
    proc, meta = box.run(os.path.realpath(node), "m.js",
                         opts=("--processes=32", "--wall-time=60"))
    assert meta["cellbox-status"] == "OK", (meta, proc.stderr)
    assert proc.stdout == b"hello node\n"
