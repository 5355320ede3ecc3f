"""The benchmark's many-boxes case: COUNT boxes running ``sleep SECONDS`` at once, all
supervised by one process (``cellbox.run_many``), and the host memory each live box costs.

Two processes: this worker leases the boxes and runs them (the keeper refuses threads, and the
benchmark has some); the benchmark (``measure``) watches it from outside, so that the
measuring costs the worker nothing:

    worker: lease COUNT boxes, print {"ready": pid}, wait for a line on stdin, run them all,
            print {"ok": n, "failed": [...], "elapsed": s}, end the leases.
    bench:  meminfo before, "go", then while the runs live: the worker's children are the
            boxes' box inits; at the most alive at once, their USS (private pages), the
            growth of the kernel's Slab + PageTables + KernelStack and of the worker's USS.

    python -m cellbox.bench.many COUNT SECONDS   (with $CELLBOX_CONFIG naming the bench config)
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time

from cellbox import boxinit

KERNEL_FIELDS = ("Slab", "PageTables", "KernelStack")


def main() -> None:
    from cellbox import Box, Limits, Status, run_many

    count, seconds = int(sys.argv[1]), sys.argv[2]
    with contextlib.ExitStack() as stack:
        boxes = [stack.enter_context(Box()) for _ in range(count)]
        print(json.dumps({"ready": os.getpid()}), flush=True)
        sys.stdin.readline()
        start = time.monotonic()
        results = run_many([(box, ["/bin/sleep", seconds]) for box in boxes],
                           Limits(wall_time=float(seconds) + 60), capture_output=False)
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


def _inits(pid: int) -> list[int]:
    """The worker's children that are box inits (not launchers, which exit at once)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except FileNotFoundError:
        return []
    found = []
    for child in children:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{child}/exe").startswith(boxinit.CACHE_DIR + "/"):
                found.append(int(child))
    return found


def measure(count: int, seconds: float, env: dict[str, str]) -> dict[str, object]:
    """Run the case in a worker; the figures, in KiB per live box where it says so."""
    worker = subprocess.Popen([sys.executable, "-m", "cellbox.bench.many", str(count),
                               str(seconds)], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdin is not None and worker.stdout is not None
    try:
        ready = worker.stdout.readline()
        if not ready:
            raise RuntimeError(f"the many-boxes worker exited ({worker.wait()})")
        pid = json.loads(ready)["ready"]
        kernel_before, worker_before = _kernel_kib(), _uss_kib(pid)
        worker.stdin.write("go\n")
        worker.stdin.flush()
        best: dict[str, float] = {"live": 0}
        while not select.select([worker.stdout], [], [], 0.02)[0]:
            inits = _inits(pid)
            if len(inits) > best["live"]:
                best = {"live": len(inits), "init_uss": sum(_uss_kib(p) for p in inits),
                        "kernel": _kernel_kib() - kernel_before,
                        "keeper": _uss_kib(pid) - worker_before}
        done = json.loads(worker.stdout.readline())
    finally:
        worker.stdin.close()
        worker.wait(120)
    live = best["live"] or 1
    per_box = {k: best.get(k, 0) / live for k in ("init_uss", "kernel", "keeper")}
    return {"boxes": count, "ok": done["ok"], "failed": done["failed"],
            "elapsed_s": done["elapsed"], "live_at_once": best["live"],
            **{f"{k}_kib_per_box": round(v, 1) for k, v in per_box.items()},
            "total_kib_per_box": round(sum(per_box.values()), 1)}


if __name__ == "__main__":
    main()
