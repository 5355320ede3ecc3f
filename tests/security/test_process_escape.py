"""Process escape: signals to host processes, ptrace, daemons that try to outlive the run,
processes that try to leave the box's cgroup.

Host canary processes run as the box's own uid, so plain uid checks would let the attacks
through: only the box's pid namespace stands in the way. Positive controls run the same
program on the host as that uid and show it does reach the canary.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cellbox import Box, Limits
from tests.support.boxes import PY, InitBox, box_uid, box_uid_processes
from tests.support.hostile import RUN_ATTACKS, CanaryProcess
from tests.support.proof import output, public_copy, run_c, run_on_host, run_py

pytestmark = pytest.mark.security


@pytest.mark.cgroup2
def test_signals_to_host_processes(box: InitBox, sys_program: Callable[[str], Path],
                                   canary_process: Callable[..., CanaryProcess],
                                   canary_dir: Path) -> None:
    """kill, killpg, sigqueue, pidfd_send_signal and F_SETOWN SIGIO, all SIGKILL, at a host
    process of the box's uid by its host pid, then kill(-1): the canary lives. Control: the
    same program on the host, as that uid, kills a second canary."""
    uid = box_uid(box.id)
    target = canary_process(uid=uid)
    exe = sys_program("proc_kill_host")
    proc, meta = run_c(box, exe, "-all", str(target.pid))
    time.sleep(0.1)
    assert target.alive(), output(proc)
    victim = canary_process(uid=uid)
    run_on_host([str(public_copy(exe, canary_dir)), str(victim.pid)], uid=uid)
    victim.proc.wait(timeout=60)


def test_ptrace_a_host_process(box: InitBox, sys_program: Callable[[str], Path],
                               canary_process: Callable[..., CanaryProcess],
                               canary_dir: Path) -> None:
    """PTRACE_ATTACH, PTRACE_SEIZE, process_vm_readv and /proc/PID/mem on a host process of
    the box's uid: it is never traced and lives on. Control: on the host, as that uid, the
    same program attaches."""
    uid = box_uid(box.id)
    target = canary_process(uid=uid)
    exe = sys_program("proc_ptrace")
    proc, _ = run_c(box, exe, str(target.pid))
    assert b"ATTACHED" not in proc.stdout, output(proc)
    assert target.alive() and target.traced_by() == 0
    control = run_on_host([str(public_copy(exe, canary_dir)), str(target.pid)], uid=uid)
    assert b"ATTACHED" in control.stdout, output(control)
    assert target.alive() and target.traced_by() == 0  # the control detached


def assert_daemon_is_gone(heartbeat: Path) -> None:
    """The daemon ran (its first heartbeat is there) and no longer runs: no process of a
    box uid is left and the heartbeat stops growing."""
    assert heartbeat.exists() and heartbeat.stat().st_size > 0, "the daemon never ran"
    assert box_uid_processes() == []
    size = heartbeat.stat().st_size
    time.sleep(0.2)
    assert heartbeat.stat().st_size == size, "a daemon is still writing"


@pytest.mark.cgroup2
def test_daemon_does_not_outlive_a_cli_run(box: InitBox, sys_program: Callable[[str], Path],
                                           canary_cgroup: Path) -> None:
    """Double fork, setsid, ignore all signals, write its pid to every inherited fd and to a
    world-writable host cgroup, then heartbeat for 30 s. When the run ends it is gone, and the
    host cgroup never got it."""
    procs = f"{canary_cgroup}/cgroup.procs"
    proc, meta = run_c(box, sys_program("proc_daemon"), "/box/heartbeat", procs,
                       f"/proc/1/root{procs}", opts=("-p10",))
    assert meta.get("cellbox-status") == "OK", (meta, output(proc))
    assert_daemon_is_gone(box.work / "heartbeat")
    assert (canary_cgroup / "cgroup.procs").read_text() == ""


def test_daemon_does_not_outlive_a_library_run(sys_program: Callable[[str], Path]) -> None:
    """Through the library the box outlives the run (a lease): a daemon started by the run must
    still be gone as soon as run() returns, while the lease is held."""
    exe = sys_program("proc_daemon")
    with Box() as box:
        box.write_file("daemon", exe.read_bytes(), 0o755)
        r = box.run(["./daemon", "/box/heartbeat"], Limits(processes=10))
        assert r.status.name == "OK", r.stderr
        assert_daemon_is_gone(Path(box.path) / "box" / "heartbeat")


FORK_ESCAPE = """
import os, sys, time
# A capped fork storm of orphans in new sessions: each child re-parents to the box's init.
for _ in range(20):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(30)
        os._exit(0)
print("forked")
"""


@pytest.mark.cgroup2
def test_orphans_in_new_sessions_end_with_the_run(box: InitBox) -> None:
    """Twenty orphans in their own sessions, sleeping 30 s: none outlives the run."""
    proc, meta = run_py(box, FORK_ESCAPE, opts=("-p64",))
    assert b"forked" in proc.stdout, output(proc)
    assert box_uid_processes() == []


def test_attacks_on_the_box_init(box: InitBox, sys_program: Callable[[str], Path]) -> None:
    """Init (pid 1 of the box) is root with capabilities until the run ends: the program tries
    to ptrace it and to kill it every way it can. Neither works, and the keeper still reports
    the program's own exit normally."""
    proc, meta = run_c(box, sys_program("proc_ptrace"), "1")
    assert b"ATTACHED" not in proc.stdout, output(proc)
    assert meta.get("cellbox-status") == "OK" and meta.get("exitcode") == "0", meta
    proc, meta = run_c(box, sys_program("proc_kill_host"), "-all", "1")
    assert meta.get("cellbox-status") == "OK" and meta.get("exitcode") == "0", (meta,
                                                                                output(proc))


TAMPER = """
import os, resource, sys
pid = int(sys.argv[1])
attacks = [
    ("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19)),
    ("prlimit", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (4, 4))),
    ("sched_setaffinity", lambda: os.sched_setaffinity(pid, {0})),
    ("sched_setscheduler", lambda: os.sched_setscheduler(pid, os.SCHED_IDLE,
                                                          os.sched_param(0))),
]
""" + RUN_ATTACKS


def scheduling_of(pid: int) -> tuple:
    return (os.getpriority(os.PRIO_PROCESS, pid), Path(f"/proc/{pid}/limits").read_text(),
            os.sched_getaffinity(pid), os.sched_getscheduler(pid))


def test_tampering_with_a_host_process(box: InitBox,
                                       canary_process: Callable[..., CanaryProcess]) -> None:
    """Renice, prlimit, pin and reschedule a host process of the box's uid by its host pid:
    its priority, limits, affinity and policy stay. Control: the same program on the host,
    as that uid, renices and reschedules it."""
    uid = box_uid(box.id)
    target = canary_process(uid=uid)
    before = scheduling_of(target.pid)
    proc, _ = run_py(box, TAMPER, str(target.pid))
    assert scheduling_of(target.pid) == before, output(proc)
    run_on_host([PY, "-c", TAMPER, str(target.pid)], uid=uid)
    assert scheduling_of(target.pid) != before


FORGE = """
import os
forged = b'{"kind": "exit", "status": 0, "wall": 0.0, "maxrss": 0, "nvcsw": 0, "nivcsw": 0}\\n'
for fd in range(3, 1024):
    try:
        os.write(fd, forged)
        print("wrote to fd", fd)
    except OSError:
        pass
os._exit(3)
"""


def test_forged_status_reports(box: InitBox) -> None:
    """The keeper learns the program's fate from init over a pipe. The program writes a forged
    "exited 0" report to every fd it might have inherited, then exits 3: the verdict must
    still be a runtime error with exit code 3."""
    proc, meta = run_py(box, FORGE)
    assert meta.get("exitcode") == "3" and meta.get("status") == "RE", (meta, output(proc))
