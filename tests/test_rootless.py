"""Rootless mode: cellbox run by an ordinary user, through a user namespace.

The suite runs as root; these tests run the cellbox command line as an unprivileged numeric
uid (``setpriv``; no /etc/passwd entry needed), with a configuration of its own: storage and
locks in a directory that uid owns, the suite's box uids, boxes 260..279
(tests/support/rootless.py). The isolation and privilege checks of the root mode also run
rootless (marked ``in_both_modes`` where they are).
Three cgroup situations: none (fail closed, or --no-cgroups and the result says so), a v1
subtree given by ``cellbox delegate`` (the host), and a v2 cgroup chowned to the uid as
systemd's Delegate=yes does it (the VM; marker cgroup2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox.cgroup import detect
from cellbox.cgroup.v2 import find_mount
from cellbox.chaos import uid_processes
from tests.support.boxes import FIRST_UID, PY, cellbox, parse_meta
from tests.support.rootless import REPO, RL_UID, ROOTLESS_IDS, RootlessBox, UserEnv, rootless_box
from tests.support.skips import lacks

pytestmark = pytest.mark.rootless

BACKEND_VERSION = detect().version


@pytest.fixture(autouse=True)
def no_user_processes() -> Iterator[None]:
    yield
    assert not uid_processes(RL_UID, 1), "processes of the rootless uid outlived the test"


@pytest.fixture
def rbox(user_env: UserEnv) -> Iterator[RootlessBox]:
    """A rootless box without any cgroup."""
    with rootless_box(user_env) as box:
        yield box


# -- the run itself, without a cgroup --------------------------------------------------------

def _doctor_says(env: UserEnv) -> dict[str, str]:
    proc = env.cellbox("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    return checks["rootless mode"]


def test_runs_as_the_user_and_reports_what_no_cgroup_did(rbox: RootlessBox) -> None:
    assert "no cgroup (rootless mode)" in rbox.env.cellbox("--print-cg-root").stdout.decode()
    doctor = _doctor_says(rbox.env)
    assert doctor["level"] == "warn" and "user namespaces allowed" in doctor["found"], doctor
    proc, meta = rbox.run("/bin/sh", "-c", "id -u; echo made > out", opts=("-p4",))
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    assert proc.stdout.decode().split() == [str(FIRST_UID + rbox.id)]  # the box uid inside
    assert meta["cellbox-cgroup-weakened"] == "accounting"  # never silent
    assert "cg-mem" not in meta
    st = (rbox.work / "out").stat()
    assert (st.st_uid, st.st_gid) == (RL_UID, RL_UID)  # the user outside; no chown needed
    assert (rbox.dir).stat().st_uid == RL_UID


@pytest.mark.cgroup2
@pytest.mark.parametrize("limit", ["--cg-mem=65536", "--time=1"])
def test_a_limit_that_needs_a_cgroup_fails_closed(rbox: RootlessBox, limit: str) -> None:
    proc, meta = rbox.run("/bin/sh", "-c", "echo ran > ran", opts=(limit,))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode()
    assert "need a cgroup" in err and "--no-cgroups" in err, err
    assert meta["status"] == "XX"
    assert not (rbox.work / "ran").exists()  # nothing ran


def test_the_opt_out_runs_and_lists_what_was_not_enforced(rbox: RootlessBox) -> None:
    proc, meta = rbox.run("/bin/true", opts=("--no-cgroups", "--cg-mem=65536", "--time=1"))
    assert meta["cellbox-status"] == "OK", proc.stderr
    assert meta["cellbox-cgroup-weakened"] == "memory,time,accounting"
    # The same, from the configuration instead of the option.
    config = rbox.env.top / "allow.toml"
    config.write_text((rbox.env.top / "cellbox.toml").read_text() + "allow_no_cgroup = true\n")
    proc = rbox.env.cellbox("-b", str(rbox.id), "--meta=-", "--cg-mem=65536", "--run", "--",
                            "/bin/true", config=config)
    assert parse_meta(proc.stdout)["cellbox-cgroup-weakened"] == "memory,accounting"


def test_processes_limit_holds_without_a_cgroup(rbox: RootlessBox, c_program) -> None:  # noqa: ANN001
    shutil.copy(c_program("forker"), rbox.work / "forker")
    for processes, forked in (("1", 0), ("3", 2)):
        proc, meta = rbox.run("./forker", "10", opts=(f"--processes={processes}",))
        assert meta["cellbox-status"] == "OK", proc.stderr
        assert proc.stdout.decode().split() == [f"forked={forked}", f"failed={10 - forked}"]


def test_cpu_rlimit_still_ends_a_busy_loop_without_a_cgroup(rbox: RootlessBox) -> None:
    proc, meta = rbox.run("/bin/sh", "-c", "while :; do :; done",
                          opts=("--no-cgroups", "--time=0.2"))
    assert meta["cellbox-status"] == "TIME_LIMIT", (proc.stderr, meta)
    assert 0.2 < float(meta["time"]) < 30  # RLIMIT_CPU (whole seconds) stopped the loop
    assert meta["cellbox-cgroup-weakened"] == "time,accounting"


def test_wall_time_limit_ends_the_run_at_once_without_a_cgroup(rbox: RootlessBox) -> None:
    proc, meta = rbox.run("/bin/sleep", "10", opts=("--wall-time=0.3",))
    assert meta["cellbox-status"] == "WALL_TIME_LIMIT", (proc.stderr, meta)
    assert float(meta["time-wall"]) < 5, meta  # before the sleep's end: no grace to wait out


def test_state_dirs_default_to_the_users_runtime_dir(user_env: UserEnv) -> None:
    config = user_env.top / "bare.toml"  # no box_root, no lock_root
    config.write_text("num_boxes = 280\n")
    runtime = user_env.top / "run"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, RL_UID, RL_UID)
    proc = user_env.cellbox("-b", "278", "--init", config=config,
                            env={"XDG_RUNTIME_DIR": str(runtime)})
    assert proc.stdout.decode().strip() == f"{runtime}/cellbox/boxes/278", proc.stderr
    assert (runtime / "cellbox" / "locks" / "278.lock").exists()
    proc = user_env.cellbox("-b", "278", "--cleanup", config=config,
                            env={"XDG_RUNTIME_DIR": str(runtime)})
    assert proc.returncode == 0 and not (runtime / "cellbox" / "boxes" / "278").exists()
    proc = user_env.cellbox("-b", "278", "--init", config=config)  # no XDG_RUNTIME_DIR
    assert proc.returncode == 2 and b"$XDG_RUNTIME_DIR is not set" in proc.stderr


def test_a_killed_rootless_run_leaves_nothing_and_is_repaired(rbox: RootlessBox) -> None:
    """SIGKILL to the user's cellbox mid-run: the box's processes die with it (init's
    parent-death signal takes the pid namespace), and the next operation repairs the box."""
    keeper = subprocess.Popen(rbox.env.command("-b", str(rbox.id), "--run", "--",
                                               "/bin/sleep", "60"),
                              env=rbox.env.environ(), cwd="/")
    deadline = time.monotonic() + 10
    while not any("sleep" in p for p in uid_processes(RL_UID, 1)):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    keeper.kill()
    keeper.wait()
    deadline = time.monotonic() + 30
    while uid_processes(RL_UID, 1):
        assert time.monotonic() < deadline, uid_processes(RL_UID, 1)
        time.sleep(0.01)
    proc, meta = rbox.run("/bin/true")
    assert meta["cellbox-status"] == "OK" and b"repaired" in proc.stderr, proc.stderr


def test_a_users_own_keeper_daemon_serves_that_user_only(rbox: RootlessBox) -> None:
    """cellbox keeperd run by the user, at its default path under $XDG_RUNTIME_DIR: the
    user's commands run in its workers; root's client does not use it."""
    env = {**rbox.env.environ(), "XDG_RUNTIME_DIR": str(rbox.env.top)}
    socket = rbox.env.top / "cellbox" / "keeper.sock"
    daemon = subprocess.Popen(rbox.env.command("keeperd"), env=env, cwd="/",
                              stderr=subprocess.PIPE)
    try:
        assert daemon.stderr is not None
        assert f"listening on {socket}".encode() in daemon.stderr.readline()
        runner = subprocess.Popen(rbox.env.command("-b", str(rbox.id), "--run", "--",
                                                   "/bin/sleep", "0.5"),
                                  env=env, cwd="/", stderr=subprocess.PIPE)
        children = f"/proc/{daemon.pid}/task/{daemon.pid}/children"
        deadline = time.monotonic() + 10
        while not Path(children).read_text().split():
            assert time.monotonic() < deadline, "the run did not go through the daemon"
            time.sleep(0.01)
        _, err = runner.communicate(timeout=30)
        assert runner.returncode == 0 and err.startswith(b"OK ("), err
        # Root's client does not talk to the user's daemon: it runs in-process.
        proc = subprocess.run([sys.executable, "-m", "cellbox", "--version"], cwd=REPO,
                              env={**os.environ, "CELLBOX_KEEPER_SOCKET": str(socket)},
                              capture_output=True, timeout=30)
        assert proc.returncode == 0 and not Path(children).read_text().split()
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert not socket.exists()


def test_the_user_builds_the_box_init_when_root_has_not(rbox: RootlessBox) -> None:
    """Without root's build in /var/cache/cellbox (a fresh machine, a changed source), the
    user builds a copy of their own in ~/.cache/cellbox, theirs alone, and runs with it."""
    home = Path(tempfile.mkdtemp(dir=rbox.env.top))
    os.chown(home, RL_UID, RL_UID)
    meta = rbox.env.top / f"meta-{rbox.id}"
    cmd = rbox.env.command("-b", str(rbox.id), f"--meta={meta}", "--run", "--", "/bin/true")
    at = cmd.index("-m")
    cmd[at:at + 2] = ["-c", "import cellbox.boxinit as s; s.CACHE_DIR = '/nonexistent/cellbox'; "
                            "from cellbox.cli.main import main; main()"]
    proc = subprocess.run(cmd, env={**rbox.env.environ(), "HOME": str(home)},
                          capture_output=True, timeout=120, cwd="/")
    assert parse_meta(meta.read_text())["cellbox-status"] == "OK", proc.stderr
    meta.unlink()
    built = list((home / ".cache" / "cellbox").glob("boxinit-*"))
    assert len(built) == 1, built
    st = built[0].stat()
    assert st.st_uid == RL_UID and st.st_mode & 0o777 == 0o755


_POOL_SCRIPT = """
import json, sys
from cellbox import Limits, Pool
with Pool(box_ids=[int(sys.argv[1])]) as pool:
    runs = [pool.run(["/bin/sh", "-c", "id -u; hostname; echo m > /dev/shm/m; ls /dev/shm"],
                     limits=Limits(processes=4)),
            pool.run(["/bin/sleep", "10"], limits=Limits(wall_time=0.3)),
            pool.run(["/bin/sh", "-c", "ls /dev/shm; echo again"], limits=Limits(processes=2))]
print(json.dumps([[r.status.name, r.stdout.decode(), r.cgroup_weakened] for r in runs]))
"""


@pytest.mark.pool
def test_the_warm_pool_works_rootless(user_env: UserEnv) -> None:
    """A pool of the user's: the warm C init keeps its capabilities in the box's user
    namespace (fresh namespaces and /dev/shm per run); a wall-time kill without a cgroup
    takes the init with it, and the next run gets a new one."""
    box_id = next(ROOTLESS_IDS)
    cmd = user_env.command()
    at = cmd.index("-m")
    cmd[at:] = ["-c", _POOL_SCRIPT, str(box_id)]
    proc = subprocess.run(cmd, env=user_env.environ(), capture_output=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    first, killed, again = json.loads(proc.stdout)
    assert first == ["OK", f"{FIRST_UID + box_id}\ncellbox\nm\n", ["accounting"]]
    assert killed[0] == "WALL_TIME_LIMIT"
    assert again == ["OK", "again\n", ["accounting"]]  # /dev/shm is empty again


def test_quota_needs_root(user_env: UserEnv) -> None:
    proc = user_env.cellbox("-b", "279", "--quota=1024,100", "--init")
    assert proc.returncode == 2 and b"--quota needs root" in proc.stderr
    assert not (user_env.top / "boxes" / "279").exists()


def test_unreadable_directories_the_program_made_are_cleaned_up(rbox: RootlessBox) -> None:
    proc, meta = rbox.run("/bin/sh", "-c", "mkdir -p a/b && ln -s /etc/shadow a/b/l && "
                          "mkfifo a/b/f && chmod 0 a/b a", opts=("-p4",))
    assert meta["cellbox-status"] == "OK", proc.stderr
    assert sorted(p.name for p in (rbox.work / "a" / "b").iterdir()) == []  # links, FIFOs go


# -- isolation: what only rootless mode must add (the checks of the root mode run rootless
#    too: tests/support/rootless.py's in_both_modes) --------------------------------------

def test_the_users_files_are_out_of_reach(rbox: RootlessBox) -> None:
    """The program is the user outside: what the box binds read-only must stay so, even
    for files the user owns."""
    mine = rbox.env.top / "mine"
    mine.mkdir(exist_ok=True)
    os.chown(mine, RL_UID, RL_UID)
    proc, meta = rbox.run("/bin/sh", "-c", "echo x > /mine/new; chmod 777 /mine",
                          opts=(f"--dir=/mine={mine}",))
    assert b"Read-only file system" in proc.stderr, proc.stderr
    assert list(mine.iterdir()) == [] and (mine.stat().st_mode & 0o777) == 0o755


def test_the_users_other_processes_are_out_of_reach(rbox: RootlessBox) -> None:
    """The program is the user outside, so only its pid namespace keeps it from the user's
    other processes: SIGKILL by their host pid, and kill(-1), reach none of them."""
    canary = subprocess.Popen(["setpriv", f"--reuid={RL_UID}", f"--regid={RL_UID}",
                               "--clear-groups", "sleep", "60"])
    try:
        proc, meta = rbox.run(PY, "-c", f"""
import os, signal
for target in ({canary.pid}, -1):
    try:
        os.kill(target, signal.SIGKILL); print(target, "sent")
    except OSError as e:
        print(target, e.errno)
""")
        assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
        assert canary.poll() is None, proc.stdout  # alive
        # Control: the same uid outside a box does kill it.
        subprocess.run(["setpriv", f"--reuid={RL_UID}", f"--regid={RL_UID}", "--clear-groups",
                        "kill", "-KILL", str(canary.pid)], check=True)
        assert canary.wait(timeout=60) == -9
    finally:
        canary.kill()
        canary.wait()


# -- with a delegated cgroup: every limit, as for root ---------------------------------------

def _limits_hold(box: RootlessBox, c_program) -> None:  # noqa: ANN001
    """Every run limit of the command line, hit, in a rootless box with a delegated cgroup:
    those the cgroup enforces (memory, processes, CPU time across processes) and the others
    (wall time and its grace, address space, stack, open files, file size, core size)."""
    assert "no cgroup" not in box.env.cellbox("--print-cg-root").stdout.decode()
    doctor = _doctor_says(box.env)
    assert doctor["level"] == "pass" and "delegated to this user" in doctor["found"], doctor
    for name in ("forker", "alloc", "burn", "recurse", "openfiles"):
        box.put(name, c_program(name).read_bytes(), 0o755)

    def run(*argv: str, opts: tuple[str, ...]) -> tuple[bytes, dict[str, str]]:
        proc, meta = box.run(*argv, opts=("--wall-time=60", *opts))
        assert "cellbox-cgroup-weakened" not in meta, meta
        return proc.stdout, meta

    out, meta = run("./forker", "10", opts=("--processes=3",))
    assert meta["cellbox-status"] == "OK" and meta.get("processes-limit-hit") == "1", meta
    assert out == b"forked=2 failed=8\n" and int(meta["cg-mem"]) > 0, out
    _, meta = run("./alloc", "200", opts=("--cg-mem=65536",))
    assert meta["cellbox-status"] == "MEMORY_LIMIT", meta
    # CPU time across processes: two busy processes, killed by the keeper before the
    # per-process RLIMIT_CPU backstop (2 s each, 4 s in all) could end either.
    _, meta = run("/bin/sh", "-c", "(while :; do :; done) & while :; do :; done",
                  opts=("--time=0.3", "--processes=4"))
    assert meta["cellbox-status"] == "TIME_LIMIT" and float(meta["time"]) < 4, meta
    _, meta = run("./burn", "1", "0.7", opts=("--time=0.4", "--extra-time=2"))
    assert meta["cellbox-status"] == "TIME_LIMIT" and meta["exitcode"] == "0", meta  # grace
    _, meta = run("/bin/sleep", "30", opts=("--wall-time=0.5",))
    assert meta["cellbox-status"] == "WALL_TIME_LIMIT", meta
    out, meta = run("./alloc", "200", opts=("--mem=100M",))
    assert out == b"malloc failed\n" and meta["exitcode"] == "3", (out, meta)
    _, meta = run("./recurse", "10000", opts=("--stack=1024",))
    assert meta["status"] == "SG" and meta["exitsig"] == "11", meta
    out, meta = run("./openfiles", "100", opts=("--open-files=10",))
    assert out == b"opened=7 errno=24\n", out
    _, meta = run("/usr/bin/dd", "if=/dev/zero", "of=big", "bs=64k", "count=32",
                  opts=("--fsize=1024",))
    assert meta["cellbox-status"] == "FILE_SIZE_LIMIT" and meta["exceeded"] == "fsize", meta
    assert (box.work / "big").stat().st_size == 1024 << 10
    out, meta = run("/bin/sh", "-c", "ulimit -c", opts=("--core=2048",))
    assert out == b"4096\n", out  # the shell counts 512-byte blocks


@pytest.fixture
def v1_delegated(user_env: UserEnv) -> Iterator[None]:
    if BACKEND_VERSION != 1:
        lacks("cgroup v1 (its delegation test; a cgroup v2 machine runs the v2 one)")
    proc = cellbox("delegate", f"--uid={RL_UID}")
    assert proc.returncode == 0, proc.stderr
    yield
    proc = cellbox("delegate", f"--uid={RL_UID}", "--remove")
    assert proc.returncode == 0, proc.stderr


def test_v1_delegated_subtree_applies_every_limit(v1_delegated: None, user_env: UserEnv,
                                                  c_program) -> None:  # noqa: ANN001
    with rootless_box(user_env) as box:
        _limits_hold(box, c_program)


@pytest.fixture
def v2_delegated(user_env: UserEnv) -> Iterator[UserEnv]:
    """A cgroup of the uid's own, as systemd's Delegate=yes makes it: the directory and its
    cgroup.procs, cgroup.subtree_control and cgroup.threads are theirs, and so is the leaf
    its processes start in (DelegateSubgroup=supervisor)."""
    mount = find_mount()
    if BACKEND_VERSION != 2 or mount is None:
        lacks("cgroup v2 (its delegation test; CI runs it in the cgroup v2 VM)")
    d = Path(mount) / f"cellbox-rootless-{os.getpid()}"
    (d / "supervisor").mkdir(parents=True)
    for p in (d, d / "cgroup.procs", d / "cgroup.subtree_control", d / "cgroup.threads",
              d / "supervisor", d / "supervisor" / "cgroup.procs"):
        os.chown(p, RL_UID, RL_UID)
    yield UserEnv(user_env.top, user_env.python, user_env.pythonpath, d)
    for sub in (d / "cellbox", d / "supervisor", d):
        if sub.exists():
            for box in sub.glob("box-*"):
                box.rmdir()
            sub.rmdir()


@pytest.mark.cgroup2
def test_v2_delegated_cgroup_applies_every_limit(v2_delegated: UserEnv, c_program) -> None:  # noqa: ANN001
    with rootless_box(v2_delegated) as box:
        _limits_hold(box, c_program)
