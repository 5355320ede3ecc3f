"""/proc and /sys masks, /dev contents (and /dev/pts on request), and the terminal: the program
never gets the caller's controlling terminal; --tty-hack hands it over for the run only."""

from __future__ import annotations

import fcntl
import os
import pty
import shlex
import subprocess
import sys
import termios

import pytest

from cellbox.linux.mounts import PROC_MASKED, PROC_READ_ONLY
from tests.support.proof import hostile, parse_results, probe

pytestmark = pytest.mark.security


PROC_PROBE = """
import errno, json, os
out = {"files": {}, "dirs": {}, "ro": {}}
for name in %r:
    path = "/proc/" + name
    if os.path.isdir(path):
        out["dirs"][name] = os.listdir(path)
    elif os.path.exists(path):
        try:
            out["files"][name] = len(open(path, "rb").read(4096))
        except OSError as e:
            out["files"][name] = errno.errorcode[e.errno]
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[4].startswith("/proc/"):
        out["ro"][f[4][6:]] = "ro" in f[5].split(",")
try:
    open("/proc/sysrq-trigger", "w").write("h")
    out["sysrq"] = "written"
except OSError as e:
    out["sysrq"] = errno.errorcode[e.errno]
print(json.dumps(out))
"""


@pytest.mark.cgroup2
def test_proc_kernel_files_are_masked_and_sys_is_read_only(box) -> None:  # noqa: ANN001
    got = probe(box, PROC_PROBE % (PROC_MASKED,))
    for name, result in got["files"].items():
        assert result in (0, "EACCES"), (name, result)  # /dev/null over it, nodev
    for name, entries in got["dirs"].items():
        assert entries == [], (name, entries)
    present = [n for n in PROC_MASKED if os.path.exists(f"/proc/{n}")]
    assert sorted(present) == sorted([*got["files"], *got["dirs"]])
    for name in present:
        assert got["ro"].get(name) is True, (name, got["ro"])
    for name in PROC_READ_ONLY:
        if os.path.isdir(f"/proc/{name}"):
            assert got["ro"].get(name) is True, (name, got["ro"])
    expected = ("EACCES", "EROFS") if os.path.exists("/proc/sysrq-trigger") else ("ENOENT",)
    assert got["sysrq"] in expected


def test_sys_is_absent_unless_a_rule_asks_and_then_masked(box) -> None:  # noqa: ANN001
    code = ("import json, os\nprint(json.dumps({'sys': os.path.exists('/sys'), "
            "'firmware': os.listdir('/sys/firmware') if os.path.exists('/sys') else None}))")
    assert probe(box, code) == {"sys": False, "firmware": None}
    got = probe(box, code, opts=("--dir=/sys=sysfs:fs",))
    assert got == {"sys": True, "firmware": []}


def test_no_device_can_be_made_or_reached(box, sys_program) -> None:  # noqa: ANN001
    got, _ = hostile(box, sys_program, "sys_mknod")
    for label in ("mknod_disk_tmp", "mknod_mem_box", "mknod_shm"):
        assert got[label] == "EPERM", (label, got)
    for label in ("open_sda", "open_vda", "open_mem", "open_tty", "open_console"):
        assert got[label] == "ENOENT", (label, got)


def test_dev_pts_only_on_request_and_a_fresh_instance(box) -> None:  # noqa: ANN001
    code = ("import json, os, pty\nout = {'pts': os.path.exists('/dev/pts')}\n"
            "if out['pts']:\n"
            "    before = sorted(os.listdir('/dev/pts'))\n"
            "    m, s = pty.openpty()\n"
            "    out.update(before=before, name=os.ttyname(s), link=os.readlink('/dev/ptmx'))\n"
            "print(json.dumps(out))")
    assert probe(box, code) == {"pts": False}
    host_master, host_slave = pty.openpty()  # a host pty the box must not see
    try:
        got = probe(box, code, opts=("--dir=/dev/pts=devpts:fs",))
    finally:
        os.close(host_master)
        os.close(host_slave)
    assert got == {"pts": True, "before": ["ptmx"], "name": "/dev/pts/0", "link": "pts/ptmx"}


def _under_terminal(script: str) -> bytes:
    """Run ``sh -c script`` as a session leader whose controlling terminal is a new pty (as a
    judge started from a shell would be); return everything written to the terminal."""
    master, slave = pty.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(["/bin/sh", "-c", script], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every holder of the slave is gone
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 0, out
    return out.replace(b"\r\n", b"\n")


def _terminal_script(box, extra: str) -> str:  # noqa: ANN001
    cellbox = shlex.join([sys.executable, "-m", "cellbox", "-b", str(box.id), "-s"])
    back = shlex.join([sys.executable, "-c", "import os; print('caller_foreground=%d' % "
                       "(os.tcgetpgrp(0) == os.getpgrp()))"])
    return f"{cellbox} {extra} --run -- ./sys_ctty && {back}"


def test_program_never_gets_the_callers_terminal(box, sys_program) -> None:  # noqa: ANN001
    hostile(box, sys_program, "sys_ctty")  # copies it in; stdin is not a terminal here
    got = parse_results(_under_terminal(_terminal_script(box, "")))
    assert got["isatty0"] == "1"  # stdin is still the caller's terminal...
    assert got["session_leader"] == "1"  # ...but in a session of its own
    assert got["foreground"] == "0"
    assert got["tiocsctty"] == "EPERM"  # it cannot steal it: it is the caller's terminal
    assert got["tiocsti"] == "EPERM"
    assert got["caller_foreground"] == "1"


def test_tty_hack_hands_the_terminal_over_for_the_run_only(box, sys_program) -> None:  # noqa: ANN001
    hostile(box, sys_program, "sys_ctty")
    got = parse_results(_under_terminal(_terminal_script(box, "--tty-hack")))
    assert got["session_leader"] == "0"  # the caller's session, as in isolate
    assert got["foreground"] == "1"  # the program's group is in the foreground
    assert got["tiocsti"] == "EPERM"  # seccomp still refuses typing into it
    assert got["caller_foreground"] == "1"  # and the caller has it back afterwards


def test_proc_escape_routes_are_closed(box, sys_program) -> None:  # noqa: ANN001
    core_pattern = open("/proc/sys/kernel/core_pattern").read()
    got, _ = hostile(box, sys_program, "sys_proc_write")
    refused = ("EACCES", "EROFS", "EPERM", "ENOENT")  # ENOENT: this kernel has no such file
    for label in ("core_pattern", "modprobe", "hostname_sysctl", "oom_score_adj_lower",
                  "open_kmsg", "open_kcore", "open_keys"):
        assert got[label] in refused, (label, got)
    assert open("/proc/sys/kernel/core_pattern").read() == core_pattern
