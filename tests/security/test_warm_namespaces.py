"""The warm pool's namespaces and its box init: every run starts with new pid, network, IPC
and UTS namespaces, so nothing a run did shows in the next one's pids or network namespace,
and a program that shares its uid with the box's init (rootless mode) changes nothing that
outlives its run through it (limits, priority, CPU affinity, scheduling and I/O class).

Each case runs a probe in a fresh pool slot, then an attacker, then the probe again in the
same slot: the probes must agree. The runs prove themselves: each must end OK and print JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cellbox import Limits, Pool, Status
from cellbox.linux.mounts import PROC_MASKED, PROC_READ_ONLY
from tests.support.boxes import PY
from tests.support.rootless import ROOTLESS_IDS, UserEnv

pytestmark = [pytest.mark.security, pytest.mark.pool]

# What a run learns from its pids: its own, the last pid its namespace handed out (as
# ns_last_pid and /proc/loadavg show it), a child's, and the pids it can see.
PIDS = """
import json, os
child = os.fork()
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
with open("/proc/sys/kernel/ns_last_pid") as f:
    last = int(f.read())
with open("/proc/loadavg") as f:
    loadavg_last = int(f.read().split()[-1])
print(json.dumps({"pid": os.getpid(), "child": child, "ns_last_pid": last,
                  "loadavg_last": loadavg_last,
                  "visible": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}))
"""

FORKER = """
import os
for _ in range(40):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print('{"forked": 40}')
"""

# The network namespace as a run sees it: its identity (the inode, and the cookie the kernel
# numbers namespaces with, never reused) and its state (loopback's and UDP's counters).
NET = """
import json, os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
cookie = int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little")  # SO_NETNS_COOKIE
s.close()
with open("/proc/net/dev") as f:
    lo = [line.split()[1:] for line in f if line.strip().startswith("lo:")][0]
with open("/proc/net/snmp") as f:
    udp = [line for line in f if line.startswith("Udp:")][1]
print(json.dumps({"ns": os.readlink("/proc/self/ns/net"), "cookie": cookie, "lo": lo,
                  "udp": udp}))
"""

QUIET = 'print("{}")'

# Leaves traces in the network namespace: packets on loopback, a UDP datagram nobody reads.
NET_TOUCH = """
import socket
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(10):
    s.sendto(b"x" * 100, r.getsockname())
print("{}")
"""

# What a process inherits from the box's init that a same-uid program could change in it.
PROCESS = """
import ctypes, json, os, resource
libc = ctypes.CDLL(None, use_errno=True)
print(json.dumps({
    "nice": os.getpriority(os.PRIO_PROCESS, 0),
    "affinity": sorted(os.sched_getaffinity(0)),
    "policy": os.sched_getscheduler(0),
    "ioprio": libc.syscall(252, 1, 0),  # ioprio_get(IOPRIO_WHO_PROCESS, self)
    "timerslack": libc.prctl(30, 0, 0, 0, 0),  # PR_GET_TIMERSLACK
    "rlimits": {n: resource.getrlimit(getattr(resource, n))
                for n in dir(resource) if n.startswith("RLIMIT_")},
}))
"""

# Everything a process may do to another of its uid, aimed at pid 1 (the box's init as the
# program sees it), and at every process of the uid and of the process group it can name.
ATTACK_INIT = """
import ctypes, json, os, resource
libc = ctypes.CDLL(None, use_errno=True)
done = {}
def attempt(name, fn):
    try:
        fn()
        done[name] = "DONE"
    except OSError as e:
        done[name] = e.strerror
def syscall(*args):
    if libc.syscall(*args) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
for n in dir(resource):
    if n.startswith("RLIMIT_") and n not in ("RLIMIT_CPU", "RLIMIT_AS"):
        r = getattr(resource, n)
        low = 1 if n != "RLIMIT_NOFILE" else 8
        attempt("prlimit " + n, lambda: resource.prlimit(1, r, (low, low)))
attempt("prlimit cpu", lambda: resource.prlimit(1, resource.RLIMIT_CPU, (3600, 3600)))
attempt("prlimit as", lambda: resource.prlimit(1, resource.RLIMIT_AS, (1 << 34, 1 << 34)))
attempt("setpriority", lambda: os.setpriority(os.PRIO_PROCESS, 1, 19))
attempt("setpriority user", lambda: os.setpriority(os.PRIO_USER, os.getuid(), 19))
attempt("affinity", lambda: os.sched_setaffinity(1, {min(os.sched_getaffinity(1))}))
attempt("ioprio", lambda: syscall(251, 1, 1, 3 << 13))  # IOPRIO_CLASS_IDLE
attempt("ioprio user", lambda: syscall(251, 3, os.getuid(), 3 << 13))
attempt("sched_idle", lambda: os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0)))
for name, text in (("timerslack_ns", "1000000000"), ("oom_score_adj", "1000"),
                   ("comm", "hijacked")):
    def write(name=name, text=text):
        with open("/proc/1/" + name, "w") as f:
            f.write(text)
    attempt(name, write)
print(json.dumps(done))
"""


def pool_runs(codes: list[str], env: UserEnv | None = None, processes: int = 64) -> list[dict]:
    """Run each Python program in turn in one pool slot (as root, or as ``env``'s uid:
    rootless mode); every run must end OK and print one JSON object, which is returned."""
    script = f"""
import json, sys
from cellbox import Limits, Pool
ids = None if sys.argv[1] == "-" else [int(sys.argv[1])]
with Pool(size=1, box_ids=ids) as pool:
    runs = [pool.run([{PY!r}, "-c", code], limits=Limits(processes=int(sys.argv[3])))
            for code in json.loads(sys.argv[2])]
print(json.dumps([[r.status.name, r.message, r.stdout.decode()] for r in runs]))
"""
    args = [str(next(ROOTLESS_IDS)) if env else "-", json.dumps(codes), str(processes)]
    if env is None:
        cmd, environ = [sys.executable, "-c", script, *args], None
    else:
        cmd = env.command()
        cmd[cmd.index("-m"):] = ["-c", script, *args]
        environ = env.environ()
    proc = subprocess.run(cmd, env=environ, capture_output=True, timeout=900, cwd="/")
    assert proc.returncode == 0, proc.stderr
    out = []
    for status, message, stdout in json.loads(proc.stdout):
        assert status == Status.OK.name, (status, message, stdout)
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.mark.cgroup2
def test_pids_do_not_tell_how_many_processes_the_last_run_made() -> None:
    fresh, _, later = pool_runs([PIDS, FORKER, PIDS])
    assert later == fresh
    assert set(fresh["visible"]) <= {1, fresh["pid"]}  # the box's init and the program alone


def test_pids_start_over_after_every_run() -> None:
    """Two quiet runs in a row: the second does not count the first's processes either."""
    first, second, third = pool_runs([PIDS, PIDS, PIDS])
    assert first == second == third


@pytest.mark.cgroup2
def test_network_namespace_is_new_for_every_run_touched_or_not() -> None:
    """Whether the namespace changed must not depend on what the run before did (a quiet run
    and a run that sent packets are followed by the same thing: a new namespace)."""
    first, _, after_quiet, _, after_touch = pool_runs([NET, QUIET, NET, NET_TOUCH, NET])
    cookies = [r["cookie"] for r in (first, after_quiet, after_touch)]
    assert len(set(cookies)) == 3, cookies
    assert first["lo"] == after_quiet["lo"] == after_touch["lo"]
    assert first["udp"] == after_quiet["udp"] == after_touch["udp"]


def test_the_network_namespace_is_not_the_last_probes_either() -> None:
    """Probes back to back (each opens a socket, sends nothing): never the same namespace,
    neither by its cookie (never reused) nor by its inode (which the kernel may hand out
    again, but not while the namespace of the run before is still alive)."""
    runs = pool_runs([NET, NET, NET])
    assert len({r["cookie"] for r in runs}) == 3, runs
    assert runs[0]["ns"] != runs[1]["ns"] != runs[2]["ns"], runs


# The run's mount table: every mount point, and which are read-only.
MOUNTS = """
import json
table = [line.split() for line in open("/proc/self/mountinfo")]
print(json.dumps({"points": [f[4] for f in table],
                  "ro": {f[4]: "ro" in f[5].split(",") for f in table}}))
"""


def test_a_run_mounts_its_own_proc_and_shm_with_nothing_of_the_box_beneath() -> None:
    """Each run's proc and /dev/shm are its own, masked as a fresh box's; as root the box's
    init mounted neither, so the run's mount table holds one of each (a copy of the box init's
    below would be copied and torn down again with every run)."""
    for run in pool_runs([MOUNTS, MOUNTS]):
        assert run["points"].count("/proc") == run["points"].count("/dev/shm") == 1, run
        for name in PROC_MASKED + PROC_READ_ONLY:
            if os.path.exists(f"/proc/{name}"):
                assert run["ro"].get(f"/proc/{name}") is True, (name, run)


def _attack_then_probe(env: UserEnv | None) -> None:
    fresh, attack, later, pids = pool_runs([PROCESS, ATTACK_INIT, PROCESS, PIDS], env)
    assert later == fresh, attack
    assert set(pids["visible"]) <= {1, pids["pid"]}


def test_a_program_changes_nothing_of_the_init_for_later_runs() -> None:
    """As root: the box's init is another uid's, so every attack on it fails already."""
    _attack_then_probe(None)


@pytest.mark.cgroup2
@pytest.mark.rootless
def test_a_rootless_program_changes_nothing_of_the_init_for_later_runs(user_env: UserEnv
                                                                       ) -> None:
    """Rootless: the program is the init's uid, so the attacks land (prlimit(1, ...) lowering
    its hard limits, nice, affinity, idle scheduling and I/O class), but only on an init that
    ends with the run."""
    _attack_then_probe(user_env)


# Forks children that wait, until the kernel refuses one; says how many it had.
FORK_UNTIL_REFUSED = """
import json, os, signal
children = []
while len(children) < 100:
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        signal.pause()
    children.append(pid)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print(json.dumps({"forked": len(children)}))
"""


@pytest.mark.rootless
def test_a_rootless_pool_gives_every_run_its_processes_exactly(user_env: UserEnv) -> None:
    """Without a cgroup, RLIMIT_NPROC stands in for the processes limit, and the kernel counts
    every process of the uid in the user namespace: the box's inits must not take any of the
    program's (a warm box has more of them than a fresh one, and not always as many)."""
    runs = pool_runs([FORK_UNTIL_REFUSED] * 3, user_env, processes=5)
    assert runs == [{"forked": 4}] * 3, runs
