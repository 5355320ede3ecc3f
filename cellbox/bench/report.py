"""The benchmark's outputs: a table (median, p90, ratios to the floor and each peer), the
issue's targets checked against them, JSON, and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict

from cellbox.bench.suite import ISOLATE_CMS, NATIVE_CMS, NATIVE_CYCLE, NATIVE_RUN, Results

FLOOR = "floor: posix_spawn + wait"
BWRAP = "bwrap --unshare-all"
ISOLATE_CYCLE = "isolate --cg init+run+cleanup"
ISOLATE_RUN = "isolate --run"
LIB = "cellbox library, fresh namespaces"
POOL = "cellbox pool, warm box"
LANGS = ("python3 -c pass", "C hello", "Java hello")  # "<lang>, bare" and "<lang>, cellbox library"
# A C hello world is as short as the floor: its overhead is shown, as a ratio, not targeted.
OVERHEAD_TARGETS = ("python3 -c pass", "Java hello")


def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def summarise(results: Results) -> None:
    """Add median and p90 (ms) to every latency case."""
    for case in results.latency.values():
        case.median_ms = statistics.median(case.samples_ms)
        case.p90_ms = percentile(case.samples_ms, 0.9)


def _median(results: Results, name: str) -> float | None:
    case = results.latency.get(name)
    return None if case is None else case.median_ms


def targets(results: Results) -> list[tuple[str, float | None, str, bool | None]]:
    """(target, measured, unit, met) for the issue's targets this run can check; ``met`` is
    None when a figure is missing (a peer that is not installed)."""
    m = {name: _median(results, name) for name in results.latency}
    floor, bwrap, lib = m.get(FLOOR), m.get(BWRAP), m.get(LIB)
    iso = m.get(ISOLATE_CYCLE)
    rows: list[tuple[str, float | None, str, bool | None]] = []

    def add(what: str, value: float | None, unit: str, limit: float,
            at_least: bool = False) -> None:
        met = None if value is None else (value >= limit if at_least else value <= limit)
        rows.append((what, value, unit, met))

    tput = results.throughput
    add("pool, warm box <= 2x floor", _ratio(m.get(POOL), floor), "x", 2)
    add("pool: >= 900 runs/s with 2 workers", tput.get(POOL), "runs/s", 900, at_least=True)
    add("library, fresh namespaces <= 5x floor", _ratio(lib, floor), "x", 5)
    add("library, fresh namespaces <= 0.75x bwrap", _ratio(lib, bwrap), "x", 0.75)
    add("library, fresh namespaces: runs/s with 2 workers >= 1.3x bwrap's",
        _ratio(tput.get(LIB), tput.get(BWRAP)), "x", 1.3, at_least=True)
    add("native --run on an initialised box <= isolate --run",
        _ratio(m.get(NATIVE_RUN), m.get(ISOLATE_RUN)), "x", 1)
    add("native init+run+cleanup <= 0.5x isolate --cg cycle",
        _ratio(m.get(NATIVE_CYCLE), iso), "x", 0.5)
    add("CMS batch test case (5 calls), native <= isolate",
        _ratio(m.get(NATIVE_CMS), m.get(ISOLATE_CMS)), "x", 1)
    many = results.many_boxes
    if many:
        add(f"{many['live_at_once']} of {many['boxes']} boxes live at once: host memory "
            "<= 512 KiB per live box",
            many["total_kib_per_box"], "KiB", 512)
    if "overhead_ms" in results.judging:
        add(f"judging: per-test overhead on the warm pool <= 3 ms "
            f"({results.judging['tests']}-test package)", results.judging["overhead_ms"],
            "ms", 3)
    for lang in OVERHEAD_TARGETS:
        if f"{lang}, cellbox library" in m:
            over = _ratio(m.get(f"{lang}, cellbox library"), m.get(f"{lang}, bare"))
            add(f"{lang}: overhead <= 10 %", None if over is None else (over - 1) * 100, "%", 10)
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def to_json(results: Results, path: str) -> None:
    data = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "python": platform.python_version()},
            **asdict(results),
            "targets": [{"target": t, "value": v, "unit": u, "met": ok}
                        for t, v, u, ok in targets(results)]}
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def print_tables(results: Results) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if Console().is_terminal else 160)
    peers = [n for n, c in results.latency.items() if c.group == "peer"]
    t = Table(title=f"cellbox bench: /bin/true, {results.rounds} interleaved rounds; load "
                    f"{_load(results.load_before)} before, {_load(results.load_after)} after")
    for col in ["case", "median ms", "p90 ms", "x floor", *(f"x {p.split()[0]}" for p in peers)]:
        t.add_column(col, justify="left" if col == "case" else "right")
    floor = _median(results, FLOOR)
    for name, case in results.latency.items():
        med = case.median_ms
        t.add_row(name, f"{med:.2f}", f"{case.p90_ms:.2f}", _fmt(_ratio(med, floor)),
                  *(_fmt(_ratio(med, _median(results, p))) for p in peers))
    console.print(t)
    if results.throughput:
        tt = Table(title="runs/s with 2 workers")
        tt.add_column("case")
        tt.add_column("runs/s", justify="right")
        for name, rate in results.throughput.items():
            tt.add_row(name, f"{rate:.0f}")
        console.print(tt)
    if results.many_boxes:
        many = results.many_boxes
        tm = Table(title=f"{many['boxes']} boxes under one keeper: {many['ok']} OK in "
                         f"{many['elapsed_s']:.1f} s, {many['live_at_once']} live at once when "
                         "measured; KiB of host memory per live box")
        for col in ("box inits (USS)", "kernel (Slab, PageTables, KernelStack)",
                    "keeper's growth (USS)", "total"):
            tm.add_column(col, justify="right")
        tm.add_row(*(f"{many[k]:.0f}" for k in ("init_uss_kib_per_box", "kernel_kib_per_box",
                                                "keeper_kib_per_box", "total_kib_per_box")))
        console.print(tm)
    if "overhead_ms" in results.judging:
        j = results.judging
        tj = Table(title=f"judging a {j['tests']}-test package on warm boxes, {j['rounds']} "
                         "rounds: median ms per test")
        for col in ("program's warm run", "judged test", "validation",
                    "judging overhead (per test: judged - run - validation)"):
            tj.add_column(col, justify="right")
        tj.add_row(*(f"{j[k]:.3f}" for k in ("bare_median_ms", "judged_median_ms",
                                             "validation_median_ms", "overhead_ms")))
        console.print(tj)
    tg = Table(title="targets this run can check")
    for col in ("target", "measured", "met"):
        tg.add_column(col)
    for what, value, unit, ok in targets(results):
        tg.add_row(what, "-" if value is None else f"{value:.2f} {unit}",
                   "n/a" if ok is None else ("yes" if ok else "NO"))
    console.print(tg)
    for s in results.skipped:
        console.print(f"skipped {s}")
    for f in results.failures[:10]:
        console.print(f"[red]failure:[/red] {f}")


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def chart(results: Results, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = list(results.latency)
    med = [results.latency[n].median_ms for n in names]
    p90 = [results.latency[n].p90_ms for n in names]
    colours = {"floor": "grey", "peer": "tab:blue", "cellbox": "tab:orange"}
    fig, axes = plt.subplots(2 if results.throughput else 1, 1, figsize=(9, 7), squeeze=False)
    ax = axes[0][0]
    ax.barh(names, med, xerr=[[0] * len(med), [p - m for p, m in zip(p90, med, strict=True)]],
            color=[colours[results.latency[n].group] for n in names])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ms per run (median, whisker to p90; log scale)")
    ax.set_title(f"/bin/true, {results.rounds} interleaved rounds, load "
                 f"{_load(results.load_before)}")
    if results.throughput:
        ax2 = axes[1][0]
        ax2.barh(list(results.throughput), list(results.throughput.values()), color="tab:green")
        ax2.invert_yaxis()
        ax2.set_xlabel("runs/s with 2 workers")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
