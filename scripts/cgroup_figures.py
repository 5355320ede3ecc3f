"""Measure the figures that come from the cgroup (CPU time, peak memory, status) for a fixed
set of programs, on whichever cgroup backend this machine has. Run as root, from the repo:

    .venv/bin/python scripts/cgroup_figures.py                      # the host (v1 here)
    python3 ../shared/vm/run-in-vm -- .venv/bin/python scripts/cgroup_figures.py   # v2

Prints one markdown table row per program, the median of REPEAT runs; docs/cgroups.md holds
the two tables side by side. Uses a configuration of its own (temporary box and lock roots,
cg_root cellbox/figures-PID) and removes everything it made.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEAT = 3
BOX = 0
PROGRAMS: list[tuple[str, list[str], list[str]]] = [  # (label, options, argv)
    ("/bin/true", [], ["/bin/true"]),
    # 3 s, so that start-up (about 0.1 s of CPU in the emulated VM, 1 ms on the host) is small
    ("burn 1 thread, 3 s of CPU", [], ["./burn", "1", "3"]),
    ("burn 4 threads, 0.75 s each", ["-p"], ["./burn", "4", "0.75"]),
    ("burn 4 threads under --time=1", ["-p", "--time=1"], ["./burn", "4", "30"]),
    ("alloc 100 MiB", [], ["./alloc", "100"]),
    ("alloc 200 MiB under --cg-mem=50M", ["--cg-mem=50M"], ["./alloc", "200"]),
    ("forker 50 under -p5", ["-p5"], ["./forker", "50"]),
]


def cellbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cellbox", *args], capture_output=True,
                          text=True, timeout=300)


def meta_of(path: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().splitlines() if line)


def measure(top: Path, opts: list[str], argv: list[str]) -> tuple[float, str, int, str]:
    """Median CPU time (s), the CPU time that burn measured itself (its threads' clocks),
    median peak memory (KiB) over REPEAT runs, and the status seen."""
    times, own, peaks, statuses = [], [], [], set()
    for _ in range(REPEAT):
        meta = top / "meta"
        out = cellbox("-b", str(BOX), f"--meta={meta}", "-w", "60", *opts, "--run", "--", *argv)
        m = meta_of(meta)
        if argv[0] == "./burn" and "status" not in m:
            own.append(float(out.stdout))
        times.append(float(m["time"]))
        peaks.append(int(m["cg-mem"]))
        statuses.add(m.get("status", "OK") + (" (oom)" if "cg-oom-killed" in m else "")
                     + (" (pids limit hit)" if "processes-limit-hit" in m else ""))
    if len(statuses) != 1:
        raise SystemExit(f"{argv}: the status changed from run to run: {statuses}")
    own_cpu = f"{statistics.median(own):.3f}" if own else "-"
    return statistics.median(times), own_cpu, int(statistics.median(peaks)), statuses.pop()


def main() -> None:
    top = Path(tempfile.mkdtemp(prefix="cellbox-figures-"))
    cg_root = f"cellbox/figures-{os.getpid()}"
    cfg = top / "cellbox.toml"
    cfg.write_text(f'box_root = "{top}/boxes"\nlock_root = "{top}/locks"\n'
                   f'cg_root = "{cg_root}"\nnum_boxes = 1\n'
                   # away from the uids of the tests (60000-69999) and the chaos run (70000-70499)
                   "first_uid = 75000\nfirst_gid = 75000\n")
    os.environ["CELLBOX_CONFIG"] = str(cfg)
    from cellbox.cgroup import detect

    backend = detect(cg_root)
    init = cellbox("-b", str(BOX), "--init")
    if init.returncode != 0:
        raise SystemExit(f"cellbox --init failed: {init.stderr}")
    box = Path(init.stdout.strip()) / "box"
    try:
        for name in ("burn", "alloc", "forker"):
            subprocess.run(["gcc", "-O1", "-pthread", "-o", str(box / name),
                            str(REPO / "tests" / "programs" / f"{name}.c")], check=True)
        print(f"cgroup v{backend.version}, Linux {os.uname().release}, median of {REPEAT}")
        print("| program | CPU time (s) | burn's own (s) | peak memory (KiB) | status |\n"
              "|---|---|---|---|---|")
        for label, opts, argv in PROGRAMS:
            cpu, own, peak, status = measure(top, opts, argv)
            print(f"| {label} | {cpu:.3f} | {own} | {peak} | {status} |", flush=True)
    finally:
        cellbox("-b", str(BOX), "--cleanup")
        for d in backend.base_dirs():
            if os.path.isdir(d):
                os.rmdir(d)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
