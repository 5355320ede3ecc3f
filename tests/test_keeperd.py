"""The resident keeper daemon (``cellbox keeperd``) and the thin client: the isolate grammar
gives the same exit codes, messages and meta files through it as in-process, a killed client
or daemon leaves what a killed CLI leaves, other users are refused, and without a daemon the
CLI runs in-process."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cellbox.box import Boxes
from cellbox.cli import client
from cellbox.config import load_config
from cellbox.linux.proc import stat as proc_stat
from cellbox.lock import BoxLock, read_record
from tests.support.boxes import (
    BUSY,
    InitBox,
    box_procs,
    boxes_json,
    cellbox,
    init_next_box,
    parse_meta,
    start,
    wait_for,
)
from tests.support.skips import unless

pytestmark = pytest.mark.daemon

ROOT = Path(__file__).parent.parent
NATIVE = ROOT / ".venv" / "bin" / "cellbox"


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    socket: Path

    def workers(self) -> list[int]:
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return [int(pid) for pid in f.read().split()]


def start_daemon(socket: Path) -> Daemon:
    env = {k: v for k, v in os.environ.items() if k != client.SOCKET_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "cellbox", "keeperd", "--socket", str(socket)],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"listening on" in line, line
    return Daemon(proc, socket)


@pytest.fixture(scope="module")
def daemon(test_config: Path) -> Iterator[Daemon]:
    d = start_daemon(test_config.parent / "keeper.sock")
    yield d
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0
    assert not d.socket.exists()


@pytest.fixture
def through(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    """Every cellbox command of the test (the support helpers' too) goes to the daemon, and
    only the daemon may serve it: a command it does not take fails instead of running
    in-process, so each passing request is proof that the daemon served it."""
    monkeypatch.setenv(client.SOCKET_ENV, str(daemon.socket))
    monkeypatch.delenv(client.NO_DAEMON_ENV)
    monkeypatch.setenv(client.REQUIRE_DAEMON_ENV, "1")
    return daemon


def in_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, **{client.NO_DAEMON_ENV: "1"})
    return subprocess.run([sys.executable, "-m", "cellbox", *args], capture_output=True,
                          env=env, cwd=cwd, timeout=60)


def via_daemon(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "cellbox", *args], capture_output=True,
                          cwd=cwd, timeout=60)


@pytest.fixture(scope="session")
def native() -> Path:
    """The native front door as scripts/bootstrap.sh builds it for this checkout."""
    assert NATIVE.read_bytes()[:4] == b"\x7fELF" and (NATIVE.parent / "cellbox-cli").exists(), \
        f"{NATIVE} is not the native client: run scripts/bootstrap.sh"
    return NATIVE


def via_native(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(NATIVE), *args], capture_output=True, cwd=cwd, timeout=60)


@pytest.mark.cgroup2
def test_init_run_cleanup_run_in_a_worker_of_the_daemon(through: Daemon) -> None:
    b = init_next_box()  # through the daemon, as every command of these tests
    try:
        runner = start("-b", str(b.id), "--run", "--", "/bin/sleep", "0.5")
        wait_for(lambda: bool(through.workers()))
        out, err = runner.communicate(timeout=30)
        assert runner.returncode == 0 and err.startswith(b"OK ("), err
        proc, meta = b.run("/bin/echo", "hello")
        assert proc.returncode == 0 and proc.stdout == b"hello\n"
        assert meta["exitcode"] == "0" and meta["cellbox-status"] == "OK"
    finally:
        cellbox("-b", str(b.id), "--cleanup", check=True)
    wait_for(lambda: not through.workers())  # the box's resident, after its --cleanup


@pytest.mark.parametrize("args", [
    ("--run", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"),
    ("--run", "--", "/no/such/program"),
    ("--bogus", "--run", "--", "/bin/true"),
    ("--run",),
    ("--time=0.2", "--run", "--", "/bin/sh", "-c", "while :; do :; done"),
    ("--stdin=in.txt", "--stdout=out.txt", "--run", "--", "/bin/cat"),
    ("--stdin=missing.txt", "--run", "--", "/bin/cat"),
    ("--version",),
    ("--wait", "--run", "--", "/bin/echo", "waited"),
])
def test_exit_code_output_and_meta_file_are_the_same_as_in_process(
        through: Daemon, box: InitBox, tmp_path: Path, args: tuple[str, ...],
        native: Path) -> None:
    box.put("in.txt", "from the box\n")
    results = []
    for run in (in_process, via_daemon, via_native):
        (tmp_path / "meta").unlink(missing_ok=True)
        # The meta file's path is relative to the caller's working directory.
        proc = run("-b", str(box.id), "--meta=meta", *args, cwd=tmp_path)
        meta = parse_meta((tmp_path / "meta").read_text()) if (tmp_path / "meta").exists() \
            else {}
        out = (box.work / "out.txt").read_bytes() if (box.work / "out.txt").exists() else None
        (box.work / "out.txt").unlink(missing_ok=True)
        for timing in ("time", "time-wall", "max-rss", "csw-voluntary", "csw-forced", "cg-mem"):
            meta.pop(timing, None)
        err = b"" if proc.stderr.startswith(b"OK (") else proc.stderr
        results.append((proc.returncode, proc.stdout, err, meta, out))
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("args", [
    ("--cleanup",),
    ("--cleanup", "--wait=1", "--silent"),
    ("--cleanup", "--as-uid=0", "--as-gid=0"),
    ("--cleanup", "--as-uid=0"),
    ("--cleanup", "--quota=1,1"),
    ("--cleanup", "--init"),
    ("--cleanup", "--help"),
    ("--cleanup", "--", "/bin/true"),
    ("--cleanup", "--box-id=100000"),
])
def test_a_cleanup_with_nothing_to_clean_answers_as_in_process(through: Daemon, native: Path,
                                                               args: tuple[str, ...]) -> None:
    """The daemon answers a --cleanup of a free, uninitialised box itself, without a worker:
    the answer, and the refusal of every bad variant, are the in-process CLI's."""
    results = [run("-b", "176", *args) for run in (in_process, via_daemon, via_native)]
    assert len({(p.returncode, p.stdout, p.stderr) for p in results}) == 1, results
    assert cellbox("-b", "176", "--init").returncode == 0  # nothing was left half done
    cellbox("-b", "176", "--cleanup", check=True)


def test_a_cleanup_of_a_held_or_damaged_box_is_the_clis(through: Daemon, native: Path) -> None:
    """A --cleanup of a box that another process holds, or that needs a repair, goes to a
    worker as any command: "busy", or the repair."""
    boxes = Boxes()
    with BoxLock(boxes.config.lock_root, 177).acquire():
        results = [run("-b", "177", "--cleanup") for run in (in_process, via_native)]
        assert results[0].returncode == results[1].returncode == 2
        assert results[0].stderr == results[1].stderr and b"busy" in results[0].stderr
    boxes.cgroups.box(177, create=True)  # what an --init killed at its start leaves
    proc = via_native("-b", "177", "--cleanup")
    assert proc.returncode == 0 and b"repaired" in proc.stderr, proc.stderr
    assert not boxes.cgroups.box(177, create=False).exists()


@pytest.mark.cgroup2
def test_a_client_killed_mid_run_leaves_what_a_killed_cli_leaves(through: Daemon,
                                                                 box: InitBox) -> None:
    runner = start("-b", str(box.id), "-p10", "--run", "--", "/bin/sh", "-c", BUSY)
    wait_for(lambda: len(box_procs(box.id)) >= 4)
    assert boxes_json()[box.id]["state"] == "running"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    wait_for(lambda: not box_procs(box.id) and not through.workers())
    assert boxes_json()[box.id]["state"] == "needs-repair"
    again = cellbox("-b", str(box.id), "--run", "--", "/bin/true")
    assert again.returncode == 0 and b"repaired: a run" in again.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_to_the_client_do_what_they_do_to_the_cli(through: Daemon, box: InitBox,
                                                          signum: int, native: Path) -> None:
    outcomes = []
    python = [sys.executable, "-m", "cellbox"]
    for command, env in ((python, {client.NO_DAEMON_ENV: "1"}), (python, {}),
                         ([str(native)], {})):
        runner = subprocess.Popen(
            [*command, "-b", str(box.id), "--run", "--", "/bin/sleep",
             "30"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, **env))
        wait_for(lambda: bool(box_procs(box.id)))
        runner.send_signal(signum)
        _, err = runner.communicate(timeout=30)
        wait_for(lambda: not box_procs(box.id))
        outcomes.append((runner.returncode, b"KeyboardInterrupt" in err))
        cellbox("-b", str(box.id), "--run", "--", "/bin/true", check=True)  # repairs
    assert outcomes == [(-signum, signum == signal.SIGINT)] * 3


def test_a_killed_daemon_ends_the_run_and_the_client_says_so(test_config: Path, box: InitBox,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    d = start_daemon(test_config.parent / "doomed.sock")
    monkeypatch.setenv(client.SOCKET_ENV, str(d.socket))
    monkeypatch.delenv(client.NO_DAEMON_ENV)
    runner = start("-b", str(box.id), "-p10", "--run", "--", "/bin/sh", "-c", BUSY)
    wait_for(lambda: len(box_procs(box.id)) >= 4)
    d.proc.kill()
    d.proc.wait()
    _, err = runner.communicate(timeout=10)
    assert runner.returncode == 2 and b"keeper daemon" in err and b"ended before" in err, err
    wait_for(lambda: not box_procs(box.id))
    d.socket.unlink()
    again = cellbox("-b", str(box.id), "--run", "--", "/bin/true")  # in-process: no daemon
    assert again.returncode == 0 and b"repaired: a run" in again.stderr


def test_users_outside_the_allowed_set_are_refused(through: Daemon) -> None:
    """Root's socket is open to every user who can reach its directory; the daemon checks the
    peer itself (tests/test_daemon_users.py has the users it serves). Through the client and
    by a request sent by hand, nobody is told why not, and nothing runs."""
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-I", "-S", "-c"]
    env = {client.SOCKET_ENV: str(through.socket)}
    imports = ("import sys, socket; sys.path.insert(0, sys.argv[1]); "
               "from cellbox.cli import client; ")
    by_the_client = imports + "print(client.run(['--version']))"
    by_hand = (imports + "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
               "s.connect(client.socket_path()); "
               "s.sendmsg([client.request(['--version'])], [(socket.SOL_SOCKET, "
               "socket.SCM_RIGHTS, b''.join(fd.to_bytes(4, sys.byteorder) "
               "for fd in (0, 1, 2, 0)))]); print(s.recv(4096).decode())")
    assert stat.S_IMODE(through.socket.stat().st_mode) == 0o666
    before = set(through.workers())  # (a resident of an earlier test's box may linger)
    top = through.socket.parent  # the test session's directory, mode 0700
    top.chmod(0o711)
    try:
        proc = subprocess.run([*as_nobody, by_the_client, str(ROOT)], capture_output=True,
                              env=env, timeout=30)
        assert proc.stdout == b"2\n" and b"may not use root's cellbox daemon" in proc.stderr, \
            proc
        proc = subprocess.run([*as_nobody, by_hand, str(ROOT)], capture_output=True, env=env,
                              timeout=30)
    finally:
        top.chmod(0o700)
    assert proc.stdout.startswith(b"refused user nobody (uid 65534) may not use root's "), proc
    assert set(through.workers()) <= before  # none started for them


def test_without_a_daemon_the_cli_runs_in_process(test_config: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(client.NO_DAEMON_ENV)  # (the suite's config: no daemon started either)
    monkeypatch.setenv(client.SOCKET_ENV, str(test_config.parent / "no-daemon.sock"))
    proc = cellbox("--version")
    assert proc.returncode == 0 and b"isolate-compatible" in proc.stdout
    (test_config.parent / "not-listening.sock").touch()
    monkeypatch.setenv(client.SOCKET_ENV, str(test_config.parent / "not-listening.sock"))
    assert cellbox("--version").returncode == 0


def test_a_second_daemon_on_the_same_socket_is_refused(through: Daemon) -> None:
    proc = subprocess.run([sys.executable, "-m", "cellbox", "keeperd", "--socket",
                           str(through.socket)], capture_output=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 2 and b"another keeper daemon is listening" in proc.stderr


def test_the_client_imports_nothing_but_itself_and_os() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); before = set(sys.modules); "
            "import cellbox.cli.client; print(' '.join(set(sys.modules) - before))")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT)],
                          capture_output=True, text=True, check=True, timeout=30)
    os_and_its_own = {"os", "os.path", "posixpath", "genericpath", "stat", "_stat",
                      "_collections_abc", "__future__"}
    assert set(proc.stdout.split()) - os_and_its_own == {"cellbox", "cellbox.cli",
                                                         "cellbox.cli.client"}


def test_the_callers_resource_limits_reach_the_run_as_in_process(through: Daemon,
                                                                 box: InitBox) -> None:
    # An unset limit (here the stack) is as high as the keeper's hard limit: the caller's.
    outputs = []
    for env in ({client.NO_DAEMON_ENV: "1"}, {}):
        proc = subprocess.run(["prlimit", "--stack=4194304:8388608", sys.executable, "-m",
                               "cellbox", "-b", str(box.id), "--run", "--", "/bin/sh", "-c",
                               "ulimit -Hs"], capture_output=True, timeout=60,
                              env=dict(os.environ, **env))
        outputs.append((proc.returncode, proc.stdout))
    assert outputs[0] == outputs[1] == (0, b"8192\n")


def test_the_native_client_hands_the_rest_to_the_python_cli(through: Daemon, native: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Subcommands, and isolate's grammar when no daemon answers or CELLBOX_NO_DAEMON=1: the
    Python CLI (cellbox-cli next to the binary) runs them, as it always has."""
    before = set(through.workers())  # (a resident of an earlier test's box may linger)
    proc = via_native("boxes", "--json")
    assert proc.returncode == 0 and proc.stdout.startswith(b"["), proc.stderr
    assert set(through.workers()) <= before  # the daemon had no part in it
    monkeypatch.delenv(client.REQUIRE_DAEMON_ENV)  # the fallbacks are what this test checks
    for env in ({client.NO_DAEMON_ENV: "1"}, {client.SOCKET_ENV: str(through.socket) + ".no"}):
        monkeypatch.setenv(*next(iter(env.items())))
        proc = via_native("--version")
        assert proc.returncode == 0 and b"isolate-compatible" in proc.stdout, proc.stderr


def test_roots_command_starts_a_daemon_on_demand_that_exits_when_idle(
        test_config: Path, box: InitBox, monkeypatch: pytest.MonkeyPatch, native: Path) -> None:
    config = test_config.parent / "autostart.toml"
    config.write_text(test_config.read_text().replace("daemon_autostart = false",
                                                      "daemon_autostart = true")
                      + "daemon_idle_exit = 2\n")
    socket = test_config.parent / "autostart.sock"
    monkeypatch.setenv("CELLBOX_CONFIG", str(config))
    monkeypatch.setenv(client.SOCKET_ENV, str(socket))
    monkeypatch.delenv(client.NO_DAEMON_ENV)
    proc = via_native("-b", str(box.id), "--run", "--", "/bin/echo", "started")
    assert proc.returncode == 0 and proc.stdout == b"started\n", proc.stderr
    pid = _daemon_pid(socket)
    assert _cmdline(pid)[-4:] == ["--socket", str(socket), "--idle-exit", "2"]
    proc = via_native("-b", str(box.id), "--run", "--", "/bin/echo", "again")
    assert proc.returncode == 0 and _daemon_pid(socket) == pid  # the same daemon served it
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15)
    assert not socket.exists()
    monkeypatch.setenv(client.NO_DAEMON_ENV, "1")  # off: in-process, no daemon started
    proc = via_native("-b", str(box.id), "--run", "--", "/bin/true")
    assert proc.returncode == 0 and not socket.exists()


def _daemon_pid(path: Path) -> int:
    import socket as sockets
    import struct

    s = sockets.socket(sockets.AF_UNIX, sockets.SOCK_SEQPACKET)
    try:
        s.connect(str(path))
        pid, _, _ = struct.unpack("3i", s.getsockopt(sockets.SOL_SOCKET, sockets.SO_PEERCRED,
                                                     12))
        return pid
    finally:
        s.close()


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


@unless(shutil.which("systemd-socket-activate") is not None,
        "systemd-socket-activate (a host without systemd)")
def test_a_daemon_started_by_its_socket_unit_serves_and_leaves_the_socket(
        test_config: Path, box: InitBox, monkeypatch: pytest.MonkeyPatch) -> None:
    """As systemd/cellbox-keeperd.socket does it: systemd listens, the daemon takes fd 3."""
    path = test_config.parent / "activated.sock"
    monkeypatch.setenv(client.SOCKET_ENV, str(path))
    monkeypatch.delenv(client.NO_DAEMON_ENV)
    activator = subprocess.Popen(
        ["systemd-socket-activate", "--seqpacket", "-l", str(path), sys.executable, "-m",
         "cellbox", "keeperd"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        assert activator.stderr is not None
        wait_for(path.exists)
        proc = cellbox("-b", str(box.id), "--run", "--", "/bin/echo", "activated")
        # (systemd's socket always connects: a daemon that failed would end the command)
        assert proc.returncode == 0 and proc.stdout == b"activated\n", proc.stderr
    finally:
        activator.send_signal(signal.SIGTERM)  # it execs the daemon: the daemon gets it
        assert activator.wait(timeout=20) == 0
    assert path.exists()  # systemd's, not the daemon's to remove
    path.unlink()


def test_a_client_that_sends_nothing_holds_up_nobody(through: Daemon, box: InitBox) -> None:
    import socket as sockets

    silent = sockets.socket(sockets.AF_UNIX, sockets.SOCK_SEQPACKET)
    silent.connect(str(through.socket))
    try:
        proc = via_daemon("-b", str(box.id), "--run", "--", "/bin/echo", "served")
        assert proc.returncode == 0 and proc.stdout == b"served\n", proc.stderr
    finally:
        silent.close()


# -- warm boxes: an initialised box keeps its box init between the commands sent to the daemon

def warm_init(test_config: Path, box: InitBox) -> int | None:
    """The pid of the box init that the box's record names as warm, if it lives."""
    record = read_record(BoxLock(load_config(str(test_config)).lock_root, box.id).record_path)
    if record.warm is None:
        return None
    st = proc_stat(int(record.warm["pid"]))
    return int(record.warm["pid"]) if st is not None and st[1] == record.warm["start"] \
        else None


def test_a_warm_box_keeps_its_files_and_its_init_between_runs(through: Daemon, box: InitBox,
                                                              test_config: Path) -> None:
    proc, meta = box.run("/bin/sh", "-c", "echo kept > /box/made-by-run-1")
    assert proc.returncode == 0 and meta["exitcode"] == "0", proc.stderr
    assert warm_init(test_config, box) is None  # a root new to the box: a box init of its own
    inits = []
    for _ in range(2):  # the same root again: a warm box init, which takes the next run too
        proc, _ = box.run("/bin/cat", "/box/made-by-run-1")
        assert proc.returncode == 0 and proc.stdout == b"kept\n", proc.stderr
        inits.append(warm_init(test_config, box))
    assert inits[0] is not None and through.workers()  # the box's resident, with its init
    assert inits[1] == inits[0]  # the same box init took the third run
    assert (box.work / "made-by-run-1").read_text() == "kept\n"  # the owner's, on the host
    assert (box.work / "made-by-run-1").stat().st_uid == 0


def test_a_runs_leftovers_do_not_reach_the_next_run(through: Daemon, box: InitBox,
                                                   c_program: Callable[..., Path]) -> None:
    """What a program may change (/box's mode, /tmp, /dev/shm, processes it leaves behind)
    is back as new at the next run of the same warm box init."""
    look = ("stat -c %a /box; ls -A /tmp /dev/shm; "
            "for p in /proc/[0-9]*; do [ $p = /proc/$$ ] || [ $p = /proc/self ] || "
            "cat $p/comm 2>/dev/null; done")
    fresh, _ = box.run("/bin/sh", "-c", look, opts=("-p10",))
    assert fresh.returncode == 0, fresh.stderr
    proc, _ = box.run("/bin/sh", "-c", "chmod 777 /box; touch /tmp/left /dev/shm/left; "
                      "setsid sleep 60 > /dev/null 2>&1 < /dev/null & echo started",
                      opts=("-p10",))
    assert proc.returncode == 0 and proc.stdout == b"started\n", proc.stderr
    assert not box_procs(box.id)  # killed with the run
    again, _ = box.run("/bin/sh", "-c", look, opts=("-p10",))
    assert again.returncode == 0 and again.stdout == fresh.stdout, (fresh.stdout, again.stdout)
    assert b"sleep" not in again.stdout and b"left" not in again.stdout


def test_each_run_gets_the_dir_rules_it_names(through: Daemon, box: InitBox,
                                              tmp_path: Path, test_config: Path) -> None:
    tmp_path.chmod(0o755)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "which").write_text(name + "\n")
        (tmp_path / name).chmod(0o755)
    seen = []
    for opts in ((f"--dir=/mnt={tmp_path / 'a'}",), (f"--dir=/mnt={tmp_path / 'b'}",), ()):
        for _ in range(2):  # in a box init of its own, then in a warm one for this root
            proc, _ = box.run("/bin/sh", "-c", "read x < /mnt/which && echo $x || echo none",
                              opts=opts)
            assert proc.returncode == 0, proc.stderr
            seen.append(proc.stdout)
        assert warm_init(test_config, box) is not None
    proc, _ = box.run("/bin/true", opts=(f"--dir=/mnt={tmp_path / 'a'}",))
    assert proc.returncode == 0, proc.stderr
    assert warm_init(test_config, box) is None  # another root: the warm init was ended
    assert seen == [b"a\n", b"a\n", b"b\n", b"b\n", b"none\n", b"none\n"]


def test_cleanup_ends_the_warm_init_and_its_resident(through: Daemon, test_config: Path) -> None:
    b = init_next_box()
    try:
        for _ in range(2):  # the second run warms a box init for this root
            proc, _ = b.run("/bin/true")
            assert proc.returncode == 0, proc.stderr
        warm = warm_init(test_config, b)
        assert warm is not None and through.workers()
    finally:
        cellbox("-b", str(b.id), "--cleanup", check=True)
    # Gone when --cleanup returned: the box init and the box's storage; soon the resident.
    assert not os.path.exists(f"/proc/{warm}")
    assert not b.dir.exists() or not any(b.dir.iterdir())
    wait_for(lambda: not through.workers())


def test_an_in_process_cleanup_ends_the_daemons_warm_init(through: Daemon,
                                                          test_config: Path) -> None:
    b = init_next_box()
    for _ in range(2):  # the second run warms a box init for this root
        proc, _ = b.run("/bin/true")
        assert proc.returncode == 0, proc.stderr
    warm = warm_init(test_config, b)
    assert warm is not None
    done = in_process("-b", str(b.id), "--cleanup")
    assert done.returncode == 0, done.stderr
    # dead (its resident reaps it at the box's next command)
    wait_for(lambda: (proc_stat(warm) or ("Z",))[0] == "Z")
    # The resident serves the box's next life with a new box init.
    cellbox("-b", str(b.id), "--init", check=True)
    try:
        for _ in range(2):
            proc, _ = b.run("/bin/ls", "-A", "/box")
            assert proc.returncode == 0 and proc.stdout == b"", proc.stderr
        assert warm_init(test_config, b) not in (None, warm)
    finally:
        cellbox("-b", str(b.id), "--cleanup", check=True)


def test_a_killed_daemon_loses_no_warm_box(test_config: Path, box: InitBox,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The box init dies with the daemon; the box stays initialised with its files, and its
    next --run, through a new daemon, warms it again."""
    monkeypatch.delenv(client.NO_DAEMON_ENV)
    monkeypatch.setenv(client.REQUIRE_DAEMON_ENV, "1")
    for attempt in range(2):
        d = start_daemon(test_config.parent / "killed.sock")
        try:
            monkeypatch.setenv(client.SOCKET_ENV, str(d.socket))
            box.run("/bin/true", opts=("-p10",))  # then the same root warms a box init
            proc, _ = box.run("/bin/sh", "-c", f"echo {attempt} >> /box/log; cat /box/log",
                              opts=("-p10",))
            assert proc.returncode == 0 and proc.stdout == b"0\n1\n"[:2 * attempt + 2], \
                proc.stderr
            assert warm_init(test_config, box) is not None
        finally:
            d.proc.kill()
            d.proc.wait()
            d.socket.unlink()
        wait_for(lambda: warm_init(test_config, box) is None)
    assert not box_procs(box.id)
