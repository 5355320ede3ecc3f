"""``cellbox bench`` runs every case and cleans up after itself. No timing is asserted here:
timings are the benchmark's business, on a quiet machine."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import pytest

from cellbox.bench.judging import BOXES as JUDGING_BOXES
from cellbox.bench.suite import NUM_BOXES
from cellbox.chaos import uid_processes
from tests.support.boxes import cellbox

pytestmark = pytest.mark.bench

MANY = 20  # boxes of the many-boxes case
FIRST_UID = 73100 + (NUM_BOXES + JUDGING_BOXES + MANY) * (os.getpid() % 50)  # away from the suite's and chaos's uids


def _bench_leftovers() -> set[str]:
    return set(glob.glob("/run/cellbox-bench-locks-*")
               + glob.glob("/sys/fs/cgroup/**/cellbox/bench-*", recursive=True)  # v1 or v2
               + glob.glob("/tmp/cellbox-bench-*"))


def test_bench_runs_every_case_and_leaves_nothing(tmp_path: Path) -> None:
    before = _bench_leftovers()
    proc = cellbox("bench", "--rounds", "2", "--warmup", "0", "--throughput-seconds", "0.2",
                   "--langs", "--many-boxes", str(MANY), "--out", str(tmp_path),
                   "--first-uid", str(FIRST_UID),
                   timeout=300)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    report = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert report["failures"] == []
    names = set(report["latency"])
    assert {"floor: posix_spawn + wait", "bwrap --unshare-all",
            "cellbox library, fresh namespaces", "cellbox pool, warm box", "cellbox --run (CLI)",
            "cellbox --run via the resident keeper",
            "cellbox --init, --run, --cleanup via the resident keeper",
            "cellbox --run, native client via the keeper",
            "cellbox --init, --run, --cleanup, native client via the keeper",
            "CMS batch test case (5 calls), native client via the keeper",
            "python3 -c pass, cellbox library", "C hello, cellbox library",
            "Java hello, cellbox library"} <= names
    assert all(len(case["samples_ms"]) == 2 for case in report["latency"].values())
    assert report["throughput"]["cellbox library, fresh namespaces"] > 0
    assert report["throughput"]["cellbox pool, warm box"] > 0
    judging = report["judging"]
    assert judging["tests"] == 100 and judging["judged_median_ms"] > 0
    assert judging["validation_median_ms"] > 0 and not judging["failed"]
    many = report["many_boxes"]
    assert many["ok"] == MANY and many["live_at_once"] > 0 and many["total_kib_per_box"] > 0
    assert _bench_leftovers() <= before
    assert uid_processes(FIRST_UID, NUM_BOXES + JUDGING_BOXES + MANY) == []


def test_bench_refuses_bad_arguments() -> None:
    proc = cellbox("bench", "--rounds", "0")
    assert proc.returncode == 2
    assert b"--rounds must be at least 1" in proc.stderr


def test_the_cli_the_bench_times_has_this_environments_packages() -> None:
    """Under the launcher (python -I -S, no site) the bench still names this environment's
    site-packages for the CLI it times (the keeper daemon needs pyseccomp from there)."""
    import subprocess
    import sys
    import sysconfig

    checkout = str(Path(__file__).parent.parent)
    launcher_like = (f"import sys; sys.path += [{checkout!r}, {sysconfig.get_path('purelib')!r}]; "
                     "from cellbox.bench.suite import default_cli; print(repr(default_cli()))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", launcher_like], check=True,
                         capture_output=True, text=True).stdout
    argv = eval(out)  # noqa: S307 - our own repr of a list of str
    assert sysconfig.get_path("purelib") in argv[-1]
    probe = argv[-1].replace("from cellbox.cli.main import main; main()", "import pyseccomp")
    subprocess.run([*argv[:-1], probe], check=True, timeout=60)
