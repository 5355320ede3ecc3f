"""A library client for the benchmark: one process that leases one box (or keeps it warm, in
a one-box ``Pool``) and runs on request.

The library case runs in a process of its own, not in the benchmark's: the benchmark has
threads (progress bar, throughput), which the keeper refuses (fork hazards), and its imports
(rich, matplotlib) would make every fork of it dearer than a real client's.

Protocol, one JSON object per line on stdin, one reply per line on stdout:
    {"argv": [...], "runs": N}         -> {"ns": [N durations], "failed": [statuses]}
      (either form may add "processes": P, the run's process limit; default 1)
    {"argv": [...], "seconds": S}      -> {"runs": n, "elapsed": seconds, "failed": [...]}
    {"copy": HOST_PATH, "name": NAME}  -> {"failed": []}  (an executable into the box)
EOF on stdin ends the lease (the box is cleaned up).

    python -m cellbox.bench.worker BOX_ID [pool]   (with $CELLBOX_CONFIG naming the bench config)
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Protocol

from cellbox import Box, Limits, Pool, RunResult, Status


class _Runner(Protocol):
    def run(self, argv: list[str], limits: Limits | None = None) -> RunResult: ...


def _serve(box: _Runner) -> None:
    for line in sys.stdin:
        req = json.loads(line)
        failed: list[str] = []
        if "copy" in req:
            assert isinstance(box, Box), "a pool's boxes start empty: no copy"
            with open(req["copy"], "rb") as f:
                box.write_file(req["name"], f.read(), 0o755)
            print(json.dumps({"failed": failed}), flush=True)
            continue
        argv = req["argv"]
        limits = Limits(processes=int(req.get("processes", 1)))
        if "seconds" in req:
            runs, start = 0, time.monotonic()
            deadline = start + float(req["seconds"])
            while time.monotonic() < deadline:
                _run(box, argv, limits, failed)
                runs += 1
            reply: dict[str, object] = {"runs": runs, "elapsed": time.monotonic() - start}
        else:
            reply = {"ns": [_run(box, argv, limits, failed) for _ in range(int(req["runs"]))]}
        reply["failed"] = failed[:5]
        print(json.dumps(reply), flush=True)


def _run(box: _Runner, argv: list[str], limits: Limits, failed: list[str]) -> int:
    start = time.perf_counter_ns()
    result = box.run(argv, limits)
    took = time.perf_counter_ns() - start
    if result.status is not Status.OK:
        failed.append(f"{result.status.name}: {result.message}")
    return took


def main() -> None:
    box_id = int(sys.argv[1])
    runner: contextlib.AbstractContextManager[_Runner] = (
        Pool(box_ids=[box_id]) if sys.argv[2:] == ["pool"] else Box(box_id))
    with runner as box:
        print(json.dumps({"ready": box_id}), flush=True)
        _serve(box)


if __name__ == "__main__":
    main()
