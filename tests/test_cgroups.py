"""The cgroup backends: detection, delegation, and the limits and figures that depend on the
cgroup, on whichever backend this machine has. CI runs this file (marker ``cgroup2``) on the
host (cgroup v1) and again in a cgroup v2 VM (scripts/test.sh with CELLBOX_VM_RUNNER), which
is emulated and 15-60 times slower: bounds on figures leave room for that, never for a wrong
status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox.cgroup import detect
from cellbox.cgroup.v2 import BOXES, LEAF, find_mount
from tests.support.boxes import CG_ROOT, InitBox, cellbox, parse_meta, run_capped
from tests.support.skips import unless

pytestmark = pytest.mark.cgroup2

MIB_KB = 1024  # cg-mem is in KiB
BACKEND = detect(CG_ROOT)
needs_v2 = unless(BACKEND.version == 2, "a usable cgroup v2 hierarchy (CI runs these tests in "
                  "the cgroup v2 VM)")


def run(box: InitBox, *argv: str, opts: tuple[str, ...] = ()):  # noqa: ANN201
    """A capped run with room for the slow VM."""
    return run_capped(box, *argv, opts=opts, wall=60, timeout=180)


def assert_memory_limit_kill(meta: dict[str, str]) -> None:
    """What a memory-limit kill looks like in isolate's meta format (as on isolate)."""
    assert meta["cellbox-status"] == "MEMORY_LIMIT", meta
    assert meta["status"] == "SG" and meta["exitsig"] == "9", meta
    assert meta["exceeded"] == "memory" and meta["cg-oom-killed"] == "1", meta
    assert meta["message"] == "Memory limit exceeded"


# -- detection -------------------------------------------------------------------------------

def test_print_cg_root_says_what_was_found_and_why() -> None:
    proc = cellbox("--print-cg-root", check=True)
    out = proc.stdout.decode()
    assert out.startswith(f"cgroup v{BACKEND.version}"), out
    assert any(f"found: {layout};" in out for layout in ("hybrid", "unified (v2 only)",
                                                          "v1 only")), out
    assert all(d in out for d in BACKEND.base_dirs()), out
    with open("/proc/self/mountinfo") as f:
        has_v1_memory = any(" - cgroup " in line and "memory" in line.split()[-1].split(",")
                            for line in f)
    assert BACKEND.version == (1 if has_v1_memory else 2), out


def test_check_config_reports_the_cgroup_setup() -> None:
    out = cellbox("--check-config", check=True).stdout.decode()
    assert f"cg_root = '{CG_ROOT}'" in out
    assert f"cgroup v{BACKEND.version}" in out and "cg_root = " in out


# -- limits and figures, on either backend ---------------------------------------------------

def test_memory_hog_is_killed_as_a_memory_limit(progs: InitBox) -> None:
    proc, meta = run(progs, "./alloc", "200", opts=("--cg-mem=50M",))
    assert proc.returncode == 1, (proc.stderr, meta)
    assert_memory_limit_kill(meta)
    assert int(meta["cg-mem"]) <= 51200 + 1024, meta
    assert b"ok" not in proc.stdout


def test_four_thread_burner_is_stopped_at_the_time_limit(progs: InitBox) -> None:
    proc, meta = run(progs, "./burn", "4", "30", opts=("-p", "--time=1"))
    assert proc.returncode == 1, (proc.stderr, meta)
    assert meta["status"] == "TO" and meta["exceeded"] == "time" and meta["killed"] == "1", meta
    assert 1.0 <= float(meta["time"]) < 10, meta  # every thread counts; long before 120 s


def test_cpu_time_is_the_programs(progs: InitBox) -> None:
    """Within 5 % on a real machine (test_accounting.py); the emulated VM on a loaded host
    reads higher (the program's start-up, emulated), so the bound here only catches a wrong
    figure (a thread not counted, another run's time, nothing at all)."""
    proc, meta = run(progs, "./burn", "2", "0.5", opts=("-p",))
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    own = float(proc.stdout)  # the threads' own clocks: 1 s in all
    assert 0.95 * own <= float(meta["time"]) <= 1.5 * own, (meta["time"], own)


def test_fork_bomb_stops_at_the_pids_limit(progs: InitBox) -> None:
    proc, meta = run(progs, "./forker", "50", opts=("-p5",))  # forker caps itself at 50
    assert proc.stdout == b"forked=4 failed=46\n", (proc.stdout, meta)  # 5 = parent + 4
    assert meta["processes-limit-hit"] == "1", meta
    assert meta["cellbox-status"] == "OK", meta


def test_second_run_reports_its_own_peak_and_oom_state(progs: InitBox) -> None:
    proc, meta = run(progs, "./alloc", "100", opts=("--cg-mem=30M",))
    assert_memory_limit_kill(meta)
    first_peak = int(meta["cg-mem"])
    assert first_peak >= 25 * MIB_KB, meta
    proc, meta = run(progs, "./alloc", "10", opts=("--cg-mem=30M",))
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    assert "cg-oom-killed" not in meta and "exceeded" not in meta, meta
    assert 10 * MIB_KB <= int(meta["cg-mem"]) < 20 * MIB_KB, meta  # not the 30 MiB of run 1
    proc, meta = run(progs, "./forker", "3")
    assert meta["processes-limit-hit"] == "1", meta
    proc, meta = run(progs, "/bin/true")
    assert meta["cellbox-status"] == "OK", meta
    assert int(meta["cg-mem"]) < 5 * MIB_KB, meta
    assert "processes-limit-hit" not in meta and "cg-oom-killed" not in meta, meta


# -- cgroup v2 placement: cg_root = "auto" ---------------------------------------------------

BOX = 185  # a fixed box id no other test uses (< conftest.NUM_BOXES)


def _auto_config(tmp_path: Path, test_config: Path) -> Path:
    """The session's configuration with cg_root = "auto" instead of the session's root."""
    cfg = tmp_path / "auto.toml"
    cfg.write_text(test_config.read_text().replace(f'cg_root = "{CG_ROOT}"', 'cg_root = "auto"'))
    return cfg


def _shell_in(cgroup: str, script: str, cfg: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh; $CB is the cellbox command) in a shell moved into ``cgroup``."""
    env = {**os.environ, "CELLBOX_CONFIG": str(cfg), "CB": f"{sys.executable} -m cellbox"}
    return subprocess.run(["/bin/sh", "-ec", f"echo 0 > {cgroup}/cgroup.procs\n{script}"],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def delegated(test_config: Path) -> Iterator[str]:
    """A fresh cgroup standing in for one that systemd delegates (Delegate=yes); removed
    with whatever cellbox made in it. It lies in the session's own cgroup root."""
    mount = find_mount()
    assert mount is not None
    d = os.path.join(mount, CG_ROOT, "delegated")
    path = mount
    for part in os.path.relpath(d, mount).split("/"):  # controllers for the children
        with open(os.path.join(path, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +pids")
        path = os.path.join(path, part)
        os.makedirs(path, exist_ok=True)
    yield d
    for sub in (os.path.join(d, BOXES, f"box-{BOX}"), os.path.join(d, BOXES),
                os.path.join(d, LEAF), d):
        if os.path.isdir(sub):
            os.rmdir(sub)


@needs_v2
def test_auto_in_a_delegated_cgroup(delegated: str, tmp_path: Path, test_config: Path,
                                    c_program) -> None:  # noqa: ANN001
    """The first cellbox process moves the cgroup's processes into a leaf and enables the
    controllers; the later ones, already in the leaf, find the same delegated cgroup."""
    meta = tmp_path / "meta"
    alloc = c_program("alloc")
    proc = _shell_in(delegated, f"""
$CB --print-cg-root
dir=$($CB -b {BOX} --init)
cat /proc/self/cgroup
cp {alloc} $dir/box/alloc
$CB -b {BOX} --meta={meta} --cg-mem=20M -w 60 --run -- ./alloc 100 || echo "exit $?"
$CB --print-cg-root
$CB -b {BOX} --cleanup
""", _auto_config(tmp_path, test_config))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    rel = delegated[len(find_mount() or ""):]
    want = f"boxes in {delegated}/{BOXES}/box-<id> (this process runs in {rel}, a delegated"
    assert want in out[0] and want in out[-1], out  # before the move and from the leaf
    assert out[1] == f"0::{rel}/{LEAF}", out
    assert out[2] == "exit 1", out
    assert_memory_limit_kill(parse_meta(meta.read_text()))
    with open(os.path.join(delegated, "cgroup.subtree_control")) as f:
        assert {"memory", "pids"} <= set(f.read().split())
    assert not os.path.exists(os.path.join(delegated, BOXES, f"box-{BOX}"))


@needs_v2
def test_concurrent_cellbox_processes_share_the_delegation(delegated: str, tmp_path: Path,
                                                          test_config: Path) -> None:
    """Three one-shot runs start at once in the delegated cgroup: each may be the one that
    moves the others into the leaf; all of them get a box under the same D/cellbox."""
    proc = _shell_in(delegated, f"""
for i in 1 2 3; do
    ($CB run --cg-mem=20M -p2 -- /bin/true >/dev/null 2>&1; echo "rc=$?") &
done
wait
echo "left in D: $(wc -l < {delegated}/cgroup.procs)"
""", _auto_config(tmp_path, test_config))
    out = proc.stdout.splitlines()
    assert out == ["rc=0"] * 3 + ["left in D: 0"], (out, proc.stderr)
    boxes = os.path.join(delegated, BOXES)
    assert not [n for n in os.listdir(boxes) if n.startswith("box-")]  # all cleaned up


@needs_v2
def test_auto_in_the_root_cgroup_uses_a_top_level_cellbox_cgroup(
        tmp_path: Path, test_config: Path) -> None:
    mount = find_mount()
    proc = _shell_in(str(mount), "$CB --print-cg-root", _auto_config(tmp_path, test_config))
    assert proc.returncode == 0, proc.stderr
    assert f"boxes in {mount}/{BOXES}/box-<id> (this process runs in the root cgroup)" \
        in proc.stdout, proc.stdout


@needs_v2
def test_auto_in_a_cgroup_without_the_controllers_fails_and_moves_nothing(
        tmp_path: Path, test_config: Path) -> None:
    mount = find_mount()
    assert mount is not None
    plain = os.path.join(mount, CG_ROOT, "plain")  # enables nothing for its children
    d = os.path.join(plain, "undelegated")
    os.makedirs(d)
    try:
        proc = _shell_in(d, f"$CB -b {BOX} --init || echo exit $?\ncat /proc/self/cgroup",
                         _auto_config(tmp_path, test_config))
        assert "which has no memory and pids controller" in proc.stderr, proc.stderr
        assert proc.stdout.splitlines() == ["exit 2", f"0::{d[len(mount):]}"], proc.stdout
        made = [n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))]
        assert made == [], made  # no leaf, no box cgroup
    finally:
        os.rmdir(d)
        os.rmdir(plain)
