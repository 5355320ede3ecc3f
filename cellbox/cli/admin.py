"""Administration subcommands: ``cellbox boxes``, ``reap``, ``chaos``, ``doctor`` and ``bench``.

None of them takes a box's lock while it is in use: they are safe to run at any time, next
to live runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING

from cellbox.cli import tables
from cellbox.cli.progress import progress_bars
from cellbox.cli.subcommands import parser as _parser
from cellbox.errors import UsageError

if TYPE_CHECKING:
    import argparse


def boxes_parser() -> argparse.ArgumentParser:
    p = _parser("boxes", "List every box that has been used, with its state: free, initialised "
                "(owner), running (pid, since when), leased (library), busy (an operation in "
                "progress) or needs-repair (a dead cellbox process left it; 'cellbox reap' or "
                "the next operation on the box repairs it).")
    p.add_argument("--json", action="store_true",
                   help="print JSON instead of a table: every field, the counters included")
    p.add_argument("--stats", action="store_true",
                   help="add the monitoring counters to the table: runs, repairs, orphans "
                        "killed, lock waits and time spent waiting")
    return p


def reap_parser() -> argparse.ArgumentParser:
    p = _parser("reap", "Repair every box that a dead cellbox process left behind (kill its "
                "leftover processes, remove its cgroups and mounts, or hand an interrupted "
                "run's box back to its owner). Boxes in use are not touched.")
    p.add_argument("--json", action="store_true", help="print the repaired boxes as JSON")
    return p


def chaos_parser() -> argparse.ArgumentParser:
    from cellbox.chaos import DEATH_LIMIT, RECOVERY_LIMIT

    p = _parser("chaos", "Crash-test the lock protocol: run random operations (init, runs of "
                "a program that forks busy children, cleanup, library leases) on a few boxes "
                "in parallel, SIGKILL cellbox processes at random moments, and check that "
                "every process of a killed run is gone within 1 s, that the next operation "
                "on the box succeeds within 2 s (limits a slow machine may raise), and that "
                "nothing is left at the end. It uses "
                "a configuration of its own (temporary box and lock roots, its own cgroup "
                "directory and uids), so it never touches real boxes. Exit 0 when every "
                "check held.")
    p.add_argument("--kills", type=int, default=100, help="stop after this many kills "
                   "(default 100)")
    p.add_argument("--seconds", type=float, default=600.0,
                   help="stop after this long even if --kills is not reached; that is a "
                        "failure (default 600)")
    p.add_argument("--boxes", type=int, default=4, help="boxes to use (default 4)")
    p.add_argument("--workers", type=int, default=2, help="parallel workers (default 2)")
    p.add_argument("--first-uid", type=int, default=61000,
                   help="first box uid/gid of the chaos boxes; must be used by nothing else "
                        "(default 61000)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--death-limit", type=float, default=DEATH_LIMIT, metavar="SECONDS",
                   help="every process of a killed run must be gone within this long "
                        f"(default {DEATH_LIMIT:g})")
    p.add_argument("--recovery-limit", type=float, default=RECOVERY_LIMIT, metavar="SECONDS",
                   help="the next operation on a box after a kill must succeed within this "
                        f"long (default {RECOVERY_LIMIT:g})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def boxes_main(argv: list[str]) -> int:
    args = boxes_parser().parse_args(argv)
    from cellbox.box import Boxes

    states = Boxes().states()
    if args.json:
        print(json.dumps([s.to_dict() for s in states], indent=2))
        return 0
    from rich.table import Table

    t = Table(title="cellbox boxes")
    columns = ["box", "state", "owner", "pid", "since", "detail"]
    if args.stats:
        columns += ["runs", "repairs", "orphans killed", "lock waits", "waited (s)"]
    for c in columns:
        t.add_column(c)
    for s in states:
        d = s.to_dict()
        row = [str(s.box_id), s.state, _dash(d["owner_uid"]), _dash(s.pid),
               time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.since)) if s.since else "-",
               s.detail or "-"]
        if args.stats:
            row += [str(d["runs"]), str(d["repairs"]), str(d["orphans_killed"]),
                    str(d["lock_waits"]), f"{s.record.wait_seconds:.3f}"]
        t.add_row(*row)
    console = tables.console()
    console.print(t if states else "No box has been used yet.")
    return 0


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def reap_main(argv: list[str]) -> int:
    args = reap_parser().parse_args(argv)
    from cellbox.box import Boxes

    boxes = Boxes()
    broken = boxes.needing_repair()
    repaired = []
    with progress_bars() as bars:
        advance = bars.task("repairing boxes", len(broken))
        for st in broken:
            if boxes.reap_one(st):
                repaired.append(st)
            advance()
    if args.json:
        print(json.dumps([s.to_dict() for s in repaired], indent=2))
    elif not repaired:
        print("Nothing to repair.")
    return 0


def chaos_main(argv: list[str]) -> int:
    args = chaos_parser().parse_args(argv)
    from cellbox.chaos import Chaos

    if args.boxes < 1 or args.workers < 1 or args.boxes < args.workers or args.kills < 0:
        raise UsageError("--boxes and --workers must be at least 1, with at least one box "
                         "per worker, and --kills must not be negative")
    # The bars show only on a terminal: say what runs, since it takes a while.
    print(f"cellbox chaos: {args.kills} random SIGKILLs on {args.boxes} boxes with "
          f"{args.workers} workers (stops after {args.seconds:g} s)...", file=sys.stderr,
          flush=True)
    with progress_bars() as bars:
        report = Chaos(boxes=args.boxes, workers=args.workers, first_uid=args.first_uid,
                       seed=args.seed, on_kill=bars.task("kills", args.kills),
                       death_limit=args.death_limit, recovery_limit=args.recovery_limit,
                       ).run(args.kills, args.seconds)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
    return 0 if report.ok else 1


def doctor_parser() -> argparse.ArgumentParser:
    p = _parser("doctor", "Check this host for cellbox: cgroups, swap, transparent huge pages, "
                "ASLR, SMT, the CPU frequency governor and boost, protected links, user "
                "namespaces, rootless mode for the current user (user namespace, delegated "
                "cgroup), seccomp and the kernel features cellbox uses. Each check passes, "
                "warns or fails and says how to fix what it found. Exit 1 if any check fails.")
    p.add_argument("--fix", action="store_true", help="apply the fixes that last until the "
                   "next reboot (sysctl and sysfs writes), then check again")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    return p


def bench_parser() -> argparse.ArgumentParser:
    p = _parser("bench", "Benchmark cellbox against the floor (posix_spawn + wait), util-linux "
                "unshare, bubblewrap and isolate (when it is on PATH), running /bin/true with "
                "every case interleaved in each round, then runs/s with 2 workers. Prints a "
                "table (median, p90, ratios to the floor and to each peer) and the issue's "
                "targets, and writes bench.json and bench.png. It uses a configuration of its "
                "own (temporary box and lock roots, its own cgroup directory and uids) and "
                "leaves nothing behind. Other load on the machine skews the figures: compare "
                "ratios, and read the load averages it records.")
    p.add_argument("--rounds", type=int, default=100, help="timed rounds (default 100)")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    p.add_argument("--throughput-seconds", type=float, default=2.0,
                   help="seconds per throughput case; 0 skips throughput (default 2)")
    p.add_argument("--langs", action="store_true",
                   help="also time python3 -c pass, a C hello world and a Java hello world, "
                        "bare and in the cellbox library (needs gcc and a JDK)")
    p.add_argument("--judging-tests", type=int, default=100, metavar="COUNT",
                   help="with --langs: the judging case's package size, for what judging adds "
                        "per test on warm boxes (at most 3 rounds); 0 skips it (default 100)")
    p.add_argument("--many-boxes", type=int, default=500, metavar="COUNT",
                   help="boxes whose programs all live at once under one keeper, for the host "
                        "memory per live box; 0 skips the case (default 500)")
    p.add_argument("--out", default="cellbox-bench",
                   help="directory for bench.json and bench.png (default ./cellbox-bench)")
    p.add_argument("--first-uid", type=int, default=73000,
                   help="first box uid/gid of the bench's 9 + COUNT boxes; must be used by "
                        "nothing else (default 73000)")
    return p


def bench_main(argv: list[str]) -> int:
    args = bench_parser().parse_args(argv)
    if (args.rounds < 1 or args.warmup < 0 or args.throughput_seconds < 0
            or args.many_boxes < 0 or args.judging_tests < 0):
        raise UsageError("--rounds must be at least 1; --warmup, --throughput-seconds and "
                         "--many-boxes must not be negative")
    from cellbox.bench import report
    from cellbox.bench.suite import Bench, DaemonSwitches
    from cellbox.cli import client

    bench = Bench(DaemonSwitches(client.NO_DAEMON_ENV, client.SOCKET_ENV),
                  first_uid=args.first_uid, many_boxes=args.many_boxes)
    with progress_bars() as bars:
        try:
            bench.setup()
            cases = bench.cases(langs=args.langs)
            bench.latency(cases, args.rounds, args.warmup,
                          bars.task("latency", args.warmup + args.rounds))
            if args.throughput_seconds > 0:
                bench.throughput(args.throughput_seconds, bars.task("throughput", 5))
            if args.langs and args.judging_tests:
                bars.task(f"judging {args.judging_tests} tests", None)
                bench.judging(args.judging_tests, min(args.rounds, 3))
            if args.many_boxes:
                bars.task(f"{args.many_boxes} boxes at once", None)
                bench.many_boxes(args.many_boxes)
        finally:
            bench.close()
    results = bench.results
    report.summarise(results)
    report.print_tables(results)
    os.makedirs(args.out, exist_ok=True)
    report.to_json(results, os.path.join(args.out, "bench.json"))
    report.chart(results, os.path.join(args.out, "bench.png"))
    print(f"wrote {args.out}/bench.json and {args.out}/bench.png")
    return 1 if results.failures else 0


def doctor_main(argv: list[str]) -> int:
    args = doctor_parser().parse_args(argv)
    from cellbox import doctor

    checks = doctor.run_checks()
    fixed = doctor.apply_fixes(checks) if args.fix else []
    if fixed:
        checks = doctor.run_checks()
    failed = any(c.level is doctor.Level.FAIL for c in checks)
    if args.json:
        print(json.dumps({"checks": [c.to_dict() for c in checks], "fixes": fixed,
                          "ok": not failed}, indent=2))
        return 1 if failed else 0
    from rich.table import Table

    t = Table(title="cellbox doctor")
    for col in ("check", "result", "found", "what to do"):
        t.add_column(col, overflow="fold")
    style = {"pass": "green", "warn": "yellow", "fail": "bold red"}
    for c in checks:
        t.add_row(c.name, f"[{style[c.level.value]}]{c.level.value}[/]", c.found,
                  c.advice + (" (--fix does this)" if c.fix and not args.fix else ""))
    console = tables.console()
    console.print(t)
    for line in fixed:
        console.print(f"fixed: {line}")
    return 1 if failed else 0


# Registered with cellbox.cli.subcommands: name -> (handler, parser maker).
COMMANDS = {
    "boxes": (boxes_main, boxes_parser),
    "reap": (reap_main, reap_parser),
    "chaos": (chaos_main, chaos_parser),
    "bench": (bench_main, bench_parser),
    "doctor": (doctor_main, doctor_parser),
}
