"""Accounting, on the real kernel: the CPU time, wall time and memory figures of the meta file,
compared with what the program itself measured, and kept apart from run to run."""

from __future__ import annotations

import pytest

from tests.support.boxes import InitBox, run_capped

pytestmark = pytest.mark.accounting

MIB_KB = 1024  # cg-mem and max-rss are in KiB
# Not in the cgroup v2 VM subset: there, on a loaded host, the cgroup's figure exceeded the
# program's own clocks by 3 to 6 % (see docs/cgroups.md); test_cgroups.py checks it loosely.
@pytest.mark.parametrize("threads", [1, 4])
def test_cpu_time_matches_what_the_program_used(progs: InitBox, threads: int) -> None:
    """2 s of CPU in all, in one thread or spread over four."""
    proc, meta = run_capped(progs, "./burn", str(threads), str(2.0 / threads), opts=("-p",))
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    true_cpu = float(proc.stdout)  # sum of CLOCK_THREAD_CPUTIME_ID over the threads
    assert true_cpu >= 1.99
    assert abs(float(meta["time"]) - true_cpu) <= 0.05 * true_cpu, (meta["time"], true_cpu)


@pytest.mark.cgroup2
def test_touched_100_mib_shows_in_cg_mem(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./alloc", "100")
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    assert 100 * MIB_KB <= int(meta["cg-mem"]) <= 110 * MIB_KB, meta["cg-mem"]
    assert int(meta["max-rss"]) >= 100 * MIB_KB


@pytest.mark.cgroup2
def test_wall_time_of_a_sleep(box: InitBox) -> None:
    proc, meta = run_capped(box, "/bin/sleep", "0.5")
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    assert float(meta["time-wall"]) >= 0.5
    assert float(meta["time"]) < 0.5  # sleeping is not CPU time


def small(meta: dict[str, str]) -> None:
    assert meta["cellbox-status"] == "OK", meta
    assert int(meta["cg-mem"]) < 10 * MIB_KB, meta
    assert float(meta["time"]) < 0.45, meta  # below the 0.5 s the run before burned
    for key in ("cg-oom-killed", "processes-limit-hit", "killed", "exceeded"):
        assert key not in meta, meta


@pytest.mark.cgroup2
def test_figures_do_not_carry_over_to_the_next_run(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./alloc", "100")
    assert int(meta["cg-mem"]) >= 100 * MIB_KB
    proc, meta = run_capped(progs, "./burn", "1", "0.5")
    assert float(meta["time"]) >= 0.45
    proc, meta = run_capped(progs, "/bin/true")
    small(meta)


@pytest.mark.cgroup2
def test_oom_and_limit_flags_do_not_carry_over(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "./alloc", "100", opts=("--cg-mem=20M",))
    assert meta["cg-oom-killed"] == "1"
    proc, meta = run_capped(progs, "/bin/true", opts=("--cg-mem=20M",))
    small(meta)
    proc, meta = run_capped(progs, "./forker", "2")
    assert meta["processes-limit-hit"] == "1"
    proc, meta = run_capped(progs, "/bin/true")
    small(meta)
    proc, meta = run_capped(progs, "./burn", "1", "5", opts=("-t", "0.2"))
    assert meta["killed"] == "1"
    proc, meta = run_capped(progs, "/bin/true", opts=("-t", "0.2"))
    small(meta)


@pytest.mark.cgroup2
def test_files_left_in_the_box_are_not_charged_to_the_next_run(progs: InitBox) -> None:
    proc, meta = run_capped(progs, "/usr/bin/dd", "if=/dev/zero", "of=data", "bs=1M", "count=40")
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    proc, meta = run_capped(progs, "./alloc", "40", opts=("--cg-mem=64M",))
    assert meta["cellbox-status"] == "OK", meta  # 40 MiB fits in 64 MiB
    proc, meta = run_capped(progs, "/bin/true")
    small(meta)


@pytest.mark.cgroup2
def test_max_rss_of_a_tiny_program_is_small(box: InitBox) -> None:
    """max-rss is the program's: the C init forks a small process, not a Python one."""
    proc, meta = run_capped(box, "/bin/true")
    assert meta["cellbox-status"] == "OK"
    assert int(meta["max-rss"]) < 4 * MIB_KB, meta["max-rss"]
