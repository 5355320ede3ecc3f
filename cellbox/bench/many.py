"""The benchmark's many-boxes case: COUNT boxes whose programs all live at once, supervised by
one process (``cellbox.run_many``), and the host memory each live box costs.

Two processes: this worker leases the boxes and runs them (the keeper refuses threads, and the
benchmark has some); the benchmark (``measure``) watches it from outside, so that the
measuring costs the worker nothing:

    worker: lease COUNT boxes, each with a FIFO in its /box, print {"ready": pid, "fifos":
            [...]}, wait for a line on stdin, run ``cat`` on every box's FIFO (it waits for a
            writer), print {"ok": n, "failed": [...], "elapsed": s}, end the leases.
    bench:  meminfo before, "go", then once every box init has its program (or the worker
            has ended): their USS (private pages), the growth of the kernel's Slab +
            PageTables + KernelStack and of the worker's USS; then it opens and closes every
            FIFO for writing, so that each cat sees EOF and exits 0.

Every box is alive when the figures are taken, however long the starts take: no box's end
(its namespaces freed late, its memory cgroup dying) is counted against the live ones.

    python -m cellbox.bench.many COUNT   (with $CELLBOX_CONFIG naming the bench config)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable

from cellbox import boxinit

KERNEL_FIELDS = ("Slab", "PageTables", "KernelStack")
FIFO = "release"  # in each box's /box
START_TIMEOUT = 600.0  # seconds for every box to start


def main() -> None:
    from cellbox import Box, Limits, Status, run_many

    count = int(sys.argv[1])
    with contextlib.ExitStack() as stack:
        boxes = [stack.enter_context(Box()) for _ in range(count)]
        fifos = [os.path.join(box.path, "box", FIFO) for box in boxes]
        for fifo in fifos:
            os.mkfifo(fifo, 0o666)  # (after the run, the box layer removes it)
            os.chmod(fifo, 0o666)  # (whatever the umask)
        print(json.dumps({"ready": os.getpid(), "fifos": fifos}), flush=True)
        sys.stdin.readline()
        start = time.monotonic()
        results = run_many([(box, ["/bin/cat", f"/box/{FIFO}"]) for box in boxes],
                           Limits(wall_time=START_TIMEOUT + 60), capture_output=False)
        elapsed = time.monotonic() - start
        failed = [f"{r.status.name}: {r.message}" for r in results if r.status is not Status.OK]
        print(json.dumps({"ok": count - len(failed), "failed": failed[:5], "elapsed": elapsed}),
              flush=True)


def _kernel_kib() -> int:
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return sum(int(fields[k].split()[0]) for k in KERNEL_FIELDS)


def _uss_kib(pid: int) -> int:
    """Private pages of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return sum(int(line.split()[1]) for line in f if line.startswith("Private_"))
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def _running_inits(pid: int) -> list[int]:
    """The worker's children that are box inits (not launchers, which exit at once) and have
    forked their program."""
    found = []
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if (os.readlink(f"/proc/{child}/exe").startswith(boxinit.CACHE_DIR + "/")
                    and _children(int(child))):
                found.append(int(child))
    return found


def _release(fifos: list[str], ended: Callable[[], bool]) -> None:
    """Open and close each FIFO for writing: its cat reads EOF. A cat that has not opened it
    yet (ENXIO: no reader) is waited for, until the worker has ``ended``."""
    waiting = list(fifos)
    while waiting and not ended():
        later = []
        for fifo in waiting:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                later.append(fifo)
        waiting = later
        if waiting:
            time.sleep(0.01)


def measure(count: int, env: dict[str, str]) -> dict[str, object]:
    """Run the case in a worker; the figures, in KiB per live box where it says so."""
    worker = subprocess.Popen([sys.executable, "-m", "cellbox.bench.many", str(count)],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert worker.stdin is not None and worker.stdout is not None
    out = worker.stdout
    try:
        ready = out.readline()
        if not ready:
            raise RuntimeError(f"the many-boxes worker exited ({worker.wait()})")
        started = json.loads(ready)
        pid, fifos = started["ready"], started["fifos"]
        kernel_before, worker_before = _kernel_kib(), _uss_kib(pid)
        worker.stdin.write("go\n")
        worker.stdin.flush()
        deadline = time.monotonic() + START_TIMEOUT
        live: list[int] = []
        while (len(live) < count and time.monotonic() < deadline
               and not select.select([out], [], [], 0.02)[0]):
            live = _running_inits(pid)
        figures = {"init_uss": sum(_uss_kib(p) for p in live),
                   "kernel": _kernel_kib() - kernel_before,
                   "keeper": _uss_kib(pid) - worker_before}
        _release(fifos, lambda: bool(select.select([out], [], [], 0)[0]))
        done = json.loads(out.readline())
    finally:
        worker.stdin.close()
        worker.wait(120)
    per_box = {k: v / max(len(live), 1) for k, v in figures.items()}
    return {"boxes": count, "ok": done["ok"], "failed": done["failed"],
            "elapsed_s": done["elapsed"], "live_at_once": len(live),
            **{f"{k}_kib_per_box": round(v, 1) for k, v in per_box.items()},
            "total_kib_per_box": round(sum(per_box.values()), 1)}


if __name__ == "__main__":
    main()
