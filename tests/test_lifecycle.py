"""The crash-proof lifecycle: locks, --wait, concurrency rules, repair after a killed
cellbox process, ``cellbox boxes`` and ``cellbox reap``, the OOM-killed supervisor, chaos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellbox import storage
from cellbox.box import Boxes
from cellbox.chaos import uid_processes
from cellbox.config import load_config
from cellbox.lock import RECORD_SIZE, BoxLock, read_record
from tests.support.boxes import (
    BUSY,
    FIRST_UID,
    UNTIL_GO,
    box_procs,
    boxes_json,
    cellbox,
    new_box,
    session_cgroup,
    start,
    wait_for,
)

pytestmark = pytest.mark.lifecycle

@pytest.fixture
def held(test_config: Path):  # noqa: ANN201
    """Hold a box's lock from this process, as a concurrent cellbox process would."""
    locks: list[BoxLock] = []

    def hold(box_id: int) -> BoxLock:
        lock = BoxLock(load_config().lock_root, box_id).acquire()
        locks.append(lock)
        return lock

    yield hold
    for lock in locks:
        lock.release()


# -- concurrency rules --------------------------------------------------------------------


def test_two_inits_at_once_exactly_one_succeeds():
    procs = [start("-b", "160", "--init") for _ in range(2)]
    results = [(p.wait(30), p.stderr.read().decode()) for p in procs]  # type: ignore[union-attr]
    assert sorted(rc for rc, _ in results) == [0, 2]
    err = next(e for rc, e in results if rc == 2)
    assert "busy" in err or "already initialised" in err
    cellbox("-b", "160", "--cleanup", check=True)


def test_busy_box_error_names_the_holder_and_the_way_out(held):
    held(161)
    proc = cellbox("-b", "161", "--init")
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert f"Box 161 is busy: cellbox process {os.getpid()} holds it" in err
    assert "--wait" in err


def test_wait_gives_up_after_its_timeout_with_a_clear_error(held):
    held(162)
    t0 = time.monotonic()
    proc = cellbox("-b", "162", "--init", "--wait=0.5")
    assert proc.returncode == 2
    assert "gave up after waiting 0.5 s" in proc.stderr.decode()
    assert time.monotonic() - t0 >= 0.5


def test_wait_gets_the_box_when_the_holder_lets_go_and_is_counted(held):
    lock = held(163)
    waiter = start("-b", "163", "--init", "--wait=20")
    try:
        time.sleep(1.0)  # the waiter is waiting after its start-up (a fraction of that)
        assert waiter.poll() is None
        lock.release()
        assert waiter.wait(20) == 0
        stats = boxes_json()[163]
        assert stats["lock_waits"] == 1 and float(stats["lock_wait_seconds"]) >= 0.5
    finally:
        cellbox("-b", "163", "--cleanup", "--wait=20", check=True)


@pytest.mark.cgroup2
def test_run_on_a_running_box_is_busy_and_cleanup_never_pulls_it(box):
    runner = start("-b", str(box.id), "-p2", "--run", "--", "/bin/sh", "-c", UNTIL_GO)
    try:
        wait_for(lambda: box_procs(box.id))
        second = cellbox("-b", str(box.id), "--run", "--", "/bin/true")
        assert second.returncode == 2 and b"running a program" in second.stderr
        refused = cellbox("-b", str(box.id), "--cleanup")
        assert refused.returncode == 2 and b"busy" in refused.stderr
        waiter = start("-b", str(box.id), "--run", "--wait", "--", "/bin/true")
    finally:
        box.put("go", "")
    assert waiter.wait(60) == 0
    assert runner.wait(60) == 0  # the first run was never disturbed
    assert boxes_json()[box.id]["state"] == "initialised"


def test_cleanup_with_wait_waits_for_the_run_to_end(box):
    runner = start("-b", str(box.id), "-p2", "--run", "--", "/bin/sh", "-c", UNTIL_GO)
    try:
        wait_for(lambda: box_procs(box.id))
        cleaner = start("-b", str(box.id), "--cleanup", "--wait")
        assert cleaner.poll() is None  # it cannot be done: the run holds the box
    finally:
        box.put("go", "")
    assert runner.wait(60) == 0
    assert cleaner.wait(60) == 0
    assert not storage.is_mounted(str(box.dir))


# -- a killed cellbox process --------------------------------------------------------------


@pytest.mark.cgroup2
def test_killed_keeper_takes_every_process_of_its_run(box):
    box.put("data", "owned by the caller")
    runner = start("-b", str(box.id), "-p10", "--run", "--", "/bin/sh", "-c", BUSY)
    wait_for(lambda: len(box_procs(box.id)) >= 4)
    assert boxes_json()[box.id]["state"] == "running"
    runner.send_signal(signal.SIGKILL)
    wait_for(lambda: not box_procs(box.id))  # how fast: `cellbox chaos`
    runner.wait()
    listed = boxes_json()[box.id]
    assert listed["state"] == "needs-repair"
    assert f"cellbox pid {runner.pid}" in str(listed["detail"])
    assert (box.work / "data").stat().st_uid == FIRST_UID + box.id  # still the box user's
    again = cellbox("-b", str(box.id), "--run", "--", "/bin/cat", "data")
    assert again.returncode == 0 and again.stdout == b"owned by the caller"
    assert b"repaired: a run" in again.stderr
    assert (box.work / "data").stat().st_uid == os.getuid()  # handed back to the owner
    listed = boxes_json()[box.id]
    assert listed["state"] == "initialised" and listed["repairs"] == 1


@pytest.mark.cgroup2
def test_repair_kills_processes_left_in_the_box_cgroup(box):
    """A process in the box's cgroup with no keeper (as if the pid namespace were gone):
    the next operation kills it, and counts it."""
    boxes = Boxes()
    cg = boxes.cgroups.box(box.id)
    join = cg.start_run(None, None)
    files = join.tasks or (os.open("cgroup.procs", os.O_WRONLY, dir_fd=join.into),)
    stray = subprocess.Popen(["/bin/sleep", "60"], pass_fds=files,
                             preexec_fn=lambda: [os.write(fd, b"0") for fd in files])
    cg.end_run()
    with BoxLock(boxes.config.lock_root, box.id) as lock:  # a run whose keeper died
        record = lock.read()
        record.run = {"pid": 999999, "since": time.time()}
        lock.write(record)
    proc = cellbox("-b", str(box.id), "--run", "--", "/bin/true")
    assert proc.returncode == 0 and b"killed 1 leftover processes" in proc.stderr
    assert stray.wait(60) == -signal.SIGKILL
    assert boxes_json()[box.id]["orphans_killed"] == 1


@pytest.mark.cgroup2
def test_lease_holder_killed_frees_the_box_at_once():
    code = ("from cellbox import Box\nimport time\nwith Box(164):\n"
            "    print('in', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"in\n"
    assert boxes_json()[164]["state"] == "leased"
    holder.kill()
    holder.wait()
    assert boxes_json()[164]["state"] == "needs-repair"
    proc = cellbox("-b", "164", "--init")  # free at once, reset by the repair
    assert proc.returncode == 0, proc.stderr
    cellbox("-b", "164", "--cleanup", check=True)


def test_lease_holder_killed_during_a_run_leaves_nothing_and_is_reset():
    """A lease's runs write no record: the lease stands for them. Its holder killed in the
    middle of one, the run dies with it, and the next holder resets the box."""
    code = ("from cellbox import Box, Limits\nwith Box(167) as box:\n"
            "    box.run(['/bin/sh', '-c', 'echo in; exec sleep 60'], capture_output=False,\n"
            "            limits=Limits(processes=2))\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"in\n"
    assert box_procs(167)
    assert boxes_json()[167]["state"] == "leased"
    holder.kill()
    holder.wait()
    wait_for(lambda: not box_procs(167))
    state = boxes_json()[167]
    assert state["state"] == "needs-repair" and "lease" in str(state["detail"])
    assert cellbox("-b", "167", "--init").returncode == 0  # reset by the repair
    cellbox("-b", "167", "--cleanup", check=True)


@pytest.mark.cgroup2
def test_interrupted_init_and_cleanup_are_repaired(test_config: Path):
    boxes = Boxes()
    # an --init killed after mounting the storage, before writing the record
    storage.mount_storage(boxes.box_dir(165), 1024, 64, 0)
    BoxLock(boxes.config.lock_root, 165).acquire().release()
    assert boxes_json()[165]["state"] == "needs-repair"
    assert cellbox("-b", "165", "--init").returncode == 0
    # a --cleanup killed after unmounting, before writing the record
    storage.unmount_storage(boxes.box_dir(165))
    assert "interrupted --cleanup" in str(boxes_json()[165]["detail"])
    assert cellbox("-b", "165", "--cleanup").returncode == 0
    assert boxes_json()[165]["repairs"] == 2


def test_corrupt_record_is_repaired(box):
    Path(load_config().lock_root, f"{box.id}.json").write_text("{not json")
    assert boxes_json()[box.id]["state"] == "needs-repair"
    proc = cellbox("-b", str(box.id), "--init")  # the box is reset, so init works
    assert proc.returncode == 0 and b"record was unreadable" in proc.stderr


@pytest.mark.unit
def test_a_record_is_rewritten_in_place_as_one_page(tmp_path: Path):
    """A record of the former format (a file renamed into place) is read and rewritten; the
    file keeps its inode and one page's size, and a shorter record leaves no tail of the
    longer one before it."""
    Path(tmp_path, "3.json").write_text(json.dumps({"initialised": True, "owner_uid": 5,
                                                    "runs": 2}))
    with BoxLock(str(tmp_path), 3) as lock:
        record = lock.read()
        assert (record.initialised, record.owner_uid, record.runs) == (True, 5, 2)
        inode = os.stat(lock.record_path).st_ino
        record.run = {"pid": 1, "since": 2.0, "note": "x" * 2000}
        lock.write(record)
        record.run = None
        lock.write(record)
        assert lock.read() == record
        st = os.stat(lock.record_path)
        assert (st.st_ino, st.st_size) == (inode, RECORD_SIZE)


@pytest.mark.unit
def test_a_record_writer_killed_at_any_moment_leaves_a_whole_record(tmp_path: Path):
    """SIGKILL a process that rewrites a record of varying length as fast as it can, 100
    times at random moments: the record always reads whole, as one of the records it wrote."""
    code = ("import sys\nfrom cellbox.lock import BoxLock\n"
            "lock = BoxLock(sys.argv[1], 0).acquire()\nrecord = lock.read()\n"
            "def write():\n    record.runs += 1\n"
            "    record.run = None if record.runs % 2 else {'pid': 1, 'since': 0.5}\n"
            "    lock.write(record)\n"
            "write()\nprint(flush=True)\nwhile True:\n    write()\n")
    runs = 0
    for kill in range(100):
        writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                                  stdout=subprocess.PIPE)
        assert writer.stdout is not None and writer.stdout.readline() == b"\n"
        time.sleep(kill % 7 * 0.0003)
        writer.kill()
        writer.wait()
        record = read_record(str(tmp_path / "0.json"))
        assert not record.extra and record.runs >= runs
        assert (record.run is None) == bool(record.runs % 2)
        runs = record.runs


# -- boxes and reap ------------------------------------------------------------------------


def test_boxes_table_and_stats(box):
    proc = cellbox("boxes", "--stats", check=True)
    out = proc.stdout.decode()
    assert "initialised" in out and "repairs" in out and str(box.id) in out


@pytest.mark.cgroup2
def test_reap_repairs_dead_boxes_and_leaves_live_runs_alone(box):
    dead = start("-b", str(box.id), "--run", "--", "/bin/sleep", "30")
    wait_for(lambda: box_procs(box.id))
    dead.kill()
    dead.wait()
    with new_box(box_id=166) as other:
        # A live run that lasts until the test lets it end (by a file), however slow the
        # machine: reap must leave it alone.
        live = start("-b", "166", "-p2", "--run", "--", "/bin/sh", "-c", UNTIL_GO)
        try:
            wait_for(lambda: box_procs(166))
            reaped = json.loads(cellbox("reap", "--json", check=True).stdout)
            assert [b["box"] for b in reaped] == [box.id]
            states = boxes_json()
            assert states[box.id]["state"] == "initialised"
            assert states[166]["state"] == "running"
        finally:
            other.put("go", "")
            live.wait(60)
        assert live.returncode == 0
    assert cellbox("reap").stdout == b"Nothing to repair.\n"


# -- the supervisor killed by the kernel's OOM killer --------------------------------------


@pytest.mark.cgroup2
def test_supervisor_killed_by_the_oom_killer_leaves_nothing(test_config: Path):
    v1 = Boxes().cgroups.version == 1
    supervisor_cg = session_cgroup("memory", "supervisor")
    try:
        limit = "memory.limit_in_bytes" if v1 else "memory.max"
        (supervisor_cg / limit).write_text(str(80 << 20))
        # `cellbox run --json` keeps the program's output in memory: 200 MB of it push the
        # supervisor itself (not the program, which has its own cgroup) over 80 MB.
        proc = subprocess.run(
            ["/bin/sh", "-c", f'echo $$ > {supervisor_cg}/cgroup.procs && exec "$@"', "sh",
             sys.executable, "-m", "cellbox", "run", "--json", "-p10", "--", "/bin/sh", "-c",
             "head -c 200000000 /dev/zero; sleep 30"],
            capture_output=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        events = (supervisor_cg / ("memory.oom_control" if v1 else "memory.events")).read_text()
        assert "oom_kill 1" in events, events
        wait_for(lambda: not uid_processes(FIRST_UID, 200))
        wait_for(lambda: not (supervisor_cg / "cgroup.procs").read_text().strip())
    finally:
        supervisor_cg.rmdir()
    dead = [b for b, s in boxes_json().items() if s["state"] == "needs-repair"]
    assert len(dead) == 1
    assert [b["box"] for b in json.loads(cellbox("reap", "--json").stdout)] == dead
    assert boxes_json()[dead[0]]["state"] == "free"


# -- chaos -------------------------------------------------------------------------------


@pytest.mark.chaos
@pytest.mark.parametrize("kills", [100, pytest.param(10, marks=pytest.mark.cgroup2)])
def test_short_chaos_run(kills: int):
    """SIGKILLs at random moments; every check of the chaos command holds. The emulated
    cgroup v2 VM affords ten. The limits on how fast a killed run dies and its box recovers
    are generous here (how fast they are is what `cellbox chaos` itself shows)."""
    first_uid = 70000 + 10 * (os.getpid() % 50)  # away from the suite's own box uids
    proc = cellbox("chaos", "--kills", str(kills), "--seconds", "900", "--death-limit", "30",
                   "--recovery-limit", "120", "--first-uid", str(first_uid), "--json",
                   timeout=1000)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert report["ok"] and report["kills"] >= kills
    assert report["survivors"] == [] and report["stuck_boxes"] == []


@pytest.mark.unit
def test_a_holder_reads_the_record_once_and_the_next_holder_sees_every_write(
        tmp_path: Path) -> None:
    """Under the lock only its holder changes the record, so it is read once per holding;
    a copy goes to each caller, and the next holder reads what the last one wrote."""
    with BoxLock(str(tmp_path), 0) as lock:
        record = lock.read()
        record.runs = 5
        assert lock.read().runs == 0  # the caller's copy is its own
        lock.write(record)
        os.remove(lock.record_path)  # (nobody else may: this shows that it is not read again)
        assert lock.read().runs == 5
        lock.write(lock.read())
    with BoxLock(str(tmp_path), 0) as lock:
        assert lock.read().runs == 5
        record = lock.read()
        record.runs = 6
        lock.write(record)
    with BoxLock(str(tmp_path), 0) as lock:
        assert lock.read().runs == 6
    assert read_record(os.path.join(str(tmp_path), "0.json")).runs == 6
