"""The chaos test of the box lifecycle (``cellbox chaos``).

Workers run random operations on their boxes through the real command line and the real
library, each in its own process: --init, --run of a program that forks busy-looping
children, --cleanup, and library leases. About half of them are SIGKILLed at a random moment
of their life. After every kill it checks that

- every process of the killed operation (its whole process tree, and anything running with
  the box's uid) is gone within ``DEATH_LIMIT`` seconds (by default), and
- the next operation on that box (a --cleanup) succeeds within ``RECOVERY_LIMIT`` seconds;

and at the end, after a final cleanup, that no process runs with a box uid, no box cgroup,
mount or blocking lock is left. It runs under a configuration of its own, in a temporary
directory, with its own cgroup directory and uids, so it never touches real boxes.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from cellbox.box import Boxes
from cellbox.config import ENV_VAR, write_private_config
from cellbox.linux import proc
from cellbox.lock import BoxLock

DEATH_LIMIT = 1.0  # seconds for every process of a killed run to die
RECOVERY_LIMIT = 2.0  # seconds for the next operation on a box after a kill
OP_TIMEOUT = 60.0  # an operation that takes longer than this has hung
# Runs and leases are where a kill hurts most (live processes, a record to repair).
KILL_PROBABILITY = {"init": 0.4, "cleanup": 0.4, "run": 0.8, "lease": 0.8}

# Forks three busy-looping children and loops itself; the CPU limit ends it.
BUSY = "for i in 1 2 3; do (while :; do :; done) & done; while :; do :; done"
LEASE = """
import sys
from cellbox import Box, Limits
with Box(int(sys.argv[1]), wait=5) as box:
    box.write_file("data.txt", b"chaos")
    box.run(["/bin/sh", "-c", sys.argv[2]], Limits(time=0.3, wall_time=5, processes=16))
"""


@dataclass
class ChaosReport:
    target_kills: int
    death_limit: float = DEATH_LIMIT
    recovery_limit: float = RECOVERY_LIMIT
    ops: int = 0
    kills: int = 0
    kills_by_op: dict[str, int] = field(default_factory=dict)
    repairs: int = 0
    orphans_killed: int = 0
    deaths: list[float] = field(default_factory=list)  # seconds from a kill to no process
    recoveries: list[float] = field(default_factory=list)  # seconds of the op after a kill
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)
    stuck_boxes: list[int] = field(default_factory=list)
    leftover_mounts: list[str] = field(default_factory=list)
    leftover_cgroups: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.kills >= self.target_kills and not self.failures and not self.survivors
                and not self.stuck_boxes and not self.leftover_mounts
                and not self.leftover_cgroups)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        for name in ("deaths", "recoveries"):
            d[name] = _spread(d[name])
        return {**d, "ok": self.ok}

    def summary(self) -> str:
        lines = [
            f"chaos: {'OK' if self.ok else 'FAILED'} after {self.elapsed:.1f} s",
            f"  operations {self.ops}, kills {self.kills} (target {self.target_kills}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.kills_by_op.items())),
            f"  repairs {self.repairs}, orphans killed by repairs {self.orphans_killed}",
            f"  death of a killed run's processes: {_describe(self.deaths)} "
            f"(limit {self.death_limit:g} s)",
            f"  next operation after a kill: {_describe(self.recoveries)} "
            f"(limit {self.recovery_limit:g} s)",
            f"  survivors {len(self.survivors)}, stuck boxes {len(self.stuck_boxes)}, "
            f"leftover mounts {len(self.leftover_mounts)}, "
            f"leftover cgroups {len(self.leftover_cgroups)}",
        ]
        lines += [f"  failure: {f}" for f in self.failures[:20]]
        lines += [f"  survivor: {s}" for s in self.survivors[:20]]
        return "\n".join(lines)


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)
    return {"median": v[len(v) // 2], "p99": v[min(len(v) - 1, int(len(v) * 0.99))],
            "max": v[-1]}


def _describe(values: list[float]) -> str:
    s = _spread(values)
    return ("median {median:.3f} s, p99 {p99:.3f} s, max {max:.3f} s".format(**s) if s
            else "none")




def _tree(pid: int) -> dict[int, int]:
    """pid -> start time of ``pid`` and all its descendants."""
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        st = proc.stat(p)
        if st is None:
            continue
        found[p] = st[1]
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return found


def _alive(tree: dict[int, int]) -> list[int]:
    alive = []
    for pid, start in tree.items():
        st = proc.stat(pid)
        if st is not None and st[1] == start and st[0] not in "ZX":
            alive.append(pid)
    return alive


def uid_processes(first: int, count: int) -> list[str]:
    """Live processes whose real uid is in [first, first + count)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        uid = int(fields.get("Uid", "-1 0").split()[0])
        if first <= uid < first + count and fields.get("State", "").split()[0] not in "ZX":
            found.append(f"pid {name} uid {uid} ({fields.get('Name', '?').strip()})")
    return found


class Chaos:
    def __init__(self, boxes: int = 4, workers: int = 2, first_uid: int = 61000,
                 seed: int | None = None, on_kill: Callable[[], None] | None = None,
                 death_limit: float = DEATH_LIMIT, recovery_limit: float = RECOVERY_LIMIT
                 ) -> None:
        """``on_kill`` is called (from a worker thread) after each kill: a progress display.
        ``death_limit`` and ``recovery_limit``: the checks' limits, in seconds (a slow,
        e.g. emulated, machine needs more)."""
        self.n_boxes = boxes
        self.on_kill = on_kill
        self.n_workers = workers
        self.first_uid = first_uid
        self.seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
        self.top = tempfile.mkdtemp(prefix="cellbox-chaos-")
        self.config, cfg = write_private_config(self.top, "chaos", boxes, first_uid)
        self.env = {**os.environ, ENV_VAR: cfg}
        self.report = ChaosReport(target_kills=0, death_limit=death_limit,
                                  recovery_limit=recovery_limit)
        self.mutex = threading.Lock()
        self.durations: dict[str, float] = {"init": 0.2, "run": 0.5, "cleanup": 0.2,
                                            "lease": 0.6}

    def run(self, kills: int, seconds: float) -> ChaosReport:
        self.report.target_kills = kills
        started = time.monotonic()
        deadline = started + seconds
        try:
            threads = [threading.Thread(target=self._worker, daemon=True, args=(
                list(range(w, self.n_boxes, self.n_workers)), random.Random(self.seed + w),
                kills, deadline)) for w in range(self.n_workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self._final_checks()
        finally:
            self.report.elapsed = time.monotonic() - started
            self._remove_own_files()
        if self.report.kills < kills:
            self.report.failures.append(f"only {self.report.kills} kills in {seconds:g} s")
        return self.report

    # -- one worker ----------------------------------------------------------------------

    def _worker(self, boxes: list[int], rng: random.Random, kills: int,
                deadline: float) -> None:
        known: dict[int, str | None] = {b: None for b in boxes}  # None: unknown state
        while self.report.kills < kills and time.monotonic() < deadline:
            if len(self.report.failures) > 20:
                return
            box = rng.choice(boxes)
            if known[box] is None:
                self._recover(box)
                known[box] = "free"
                continue
            op = rng.choice(["init", "init", "lease"] if known[box] == "free"
                            else ["run", "run", "run", "run", "cleanup"])
            kill_after = (rng.uniform(0, self.durations[op] * 1.2)
                          if rng.random() < KILL_PROBABILITY[op] else None)
            killed = self._operation(op, box, kill_after)
            if killed:
                known[box] = None
            elif op == "init":
                known[box] = "initialised"
            elif op == "cleanup":
                known[box] = "free"

    def _argv(self, op: str, box: int) -> list[str]:
        cli = [sys.executable, "-m", "cellbox"]
        if op == "lease":
            return [sys.executable, "-c", LEASE, str(box), BUSY]
        if op == "run":
            return cli + ["--run", f"-b{box}", "-s", "-t", "0.3", "-w", "5", "-p16", "--",
                          "/bin/sh", "-c", BUSY]
        return cli + [f"--{op}", f"-b{box}"]

    def _operation(self, op: str, box: int, kill_after: float | None) -> bool:
        """Run one operation, maybe SIGKILL it; True if it was killed."""
        t0 = time.monotonic()
        proc = subprocess.Popen(self._argv(op, box), env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kill_after is not None:
            try:
                proc.wait(kill_after)
            except subprocess.TimeoutExpired:
                self._kill(proc, op, box)
                return True
        try:
            _, err = proc.communicate(timeout=OP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            self._fail(f"box {box}: {op} hung for {OP_TIMEOUT:g} s")
            return True
        with self.mutex:
            self.report.ops += 1
            self.durations[op] = 0.8 * self.durations[op] + 0.2 * (time.monotonic() - t0)
        allowed = (0, 1) if op == "run" else (0,)  # a run ends by its CPU limit (status 1)
        if proc.returncode not in allowed:
            self._fail(f"box {box}: {op} exited {proc.returncode}: "
                       f"{err.decode(errors='replace').strip()[-300:]}")
        return False

    def _kill(self, proc: subprocess.Popen[bytes], op: str, box: int) -> None:
        """SIGKILL the cellbox process; every process of its run must then die within
        the death limit: its descendants, and anything running with the box's uid."""
        run = _tree(proc.pid)
        del run[proc.pid]
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        uid = self.config.box_uid(box)
        while True:
            alive = _alive(run) + uid_processes(uid, 1)
            waited = time.monotonic() - killed_at
            if not alive or waited > self.report.death_limit + 2:
                break
            time.sleep(0.005)
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()  # not read to EOF: a survivor could hold it open forever
        with self.mutex:
            self.report.ops += 1
            self.report.kills += 1
            self.report.kills_by_op[op] = self.report.kills_by_op.get(op, 0) + 1
            self.report.deaths.append(waited)
        if self.on_kill is not None:
            self.on_kill()
        if alive or waited > self.report.death_limit:
            self._fail(f"box {box}: processes of a killed {op} lived {waited:.3f} s: {alive}")

    def _recover(self, box: int) -> None:
        """The next operation after a kill: must succeed within the recovery limit."""
        limit = self.report.recovery_limit
        t0 = time.monotonic()
        proc = subprocess.run(self._argv("cleanup", box) + [f"--wait={limit}"],
                              env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=OP_TIMEOUT)
        took = time.monotonic() - t0
        with self.mutex:
            self.report.ops += 1
            self.report.recoveries.append(took)
        if proc.returncode != 0 or took > limit:
            self._fail(f"box {box}: cleanup after a kill exited {proc.returncode} in "
                       f"{took:.3f} s: {proc.stderr.decode(errors='replace').strip()[-300:]}")

    def _fail(self, message: str) -> None:
        with self.mutex:
            self.report.failures.append(message)

    # -- the end -------------------------------------------------------------------------

    def _final_checks(self) -> None:
        for box in range(self.n_boxes):
            self._recover(box)
        boxes = Boxes(self.config)
        for st in boxes.states():
            self.report.repairs += st.record.repairs
            self.report.orphans_killed += st.record.orphans_killed
        self.report.survivors = uid_processes(self.first_uid, self.n_boxes)
        for box in range(self.n_boxes):
            lock = BoxLock(self.config.lock_root, box)
            try:
                lock.acquire(0)
            except Exception:  # noqa: BLE001 - any failure to lock is a stuck box
                self.report.stuck_boxes.append(box)
            else:
                lock.release()
            if boxes.cgroups.box(box, create=False).exists():
                self.report.leftover_cgroups.append(box)
        with open("/proc/self/mountinfo") as f:
            self.report.leftover_mounts = [
                line.split()[4] for line in f
                if line.split()[4].startswith(self.config.box_root + "/")]

    def _remove_own_files(self) -> None:
        if not self.report.leftover_cgroups:
            Boxes(self.config).cgroups.remove_root()
        if not self.report.leftover_mounts:
            shutil.rmtree(self.top, ignore_errors=True)
