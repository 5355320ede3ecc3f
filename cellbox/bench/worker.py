"""A library client for the benchmark: one process that leases one box and runs on request.

The library case runs in a process of its own, not in the benchmark's: the benchmark has
threads (progress bar, throughput), which the keeper refuses (fork hazards), and its imports
(rich, matplotlib) would make every fork of it dearer than a real client's.

Protocol, one JSON object per line on stdin, one reply per line on stdout:
    {"argv": [...], "runs": N}         -> {"ns": [N durations], "failed": [statuses]}
    {"argv": [...], "seconds": S}      -> {"runs": n, "elapsed": seconds, "failed": [...]}
    {"copy": HOST_PATH, "name": NAME}  -> {"failed": []}  (an executable into the box)
EOF on stdin ends the lease (the box is cleaned up).

    python -m cellbox.bench.worker BOX_ID     (with $CELLBOX_CONFIG naming the bench config)
"""

from __future__ import annotations

import json
import sys
import time

from cellbox import Box, Status


def _serve(box: Box) -> None:
    for line in sys.stdin:
        req = json.loads(line)
        failed: list[str] = []
        if "copy" in req:
            with open(req["copy"], "rb") as f:
                box.write_file(req["name"], f.read(), 0o755)
            print(json.dumps({"failed": failed}), flush=True)
            continue
        argv = req["argv"]
        if "seconds" in req:
            runs, start = 0, time.monotonic()
            deadline = start + float(req["seconds"])
            while time.monotonic() < deadline:
                _run(box, argv, failed)
                runs += 1
            reply: dict[str, object] = {"runs": runs, "elapsed": time.monotonic() - start}
        else:
            reply = {"ns": [_run(box, argv, failed) for _ in range(int(req["runs"]))]}
        reply["failed"] = failed[:5]
        print(json.dumps(reply), flush=True)


def _run(box: Box, argv: list[str], failed: list[str]) -> int:
    start = time.perf_counter_ns()
    result = box.run(argv)
    took = time.perf_counter_ns() - start
    if result.status is not Status.OK:
        failed.append(f"{result.status.name}: {result.message}")
    return took


def main() -> None:
    with Box(int(sys.argv[1])) as box:
        print(json.dumps({"ready": box.box_id}), flush=True)
        _serve(box)


if __name__ == "__main__":
    main()
