"""Prometheus metrics, in a registry of the app's own (several apps may share a process)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cellbox.server.backends import PoolStats
from cellbox.server.records import Record

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.submissions = Counter("cellbox_submissions", "Submissions accepted, by language",
                                   ["language"], registry=r)
        self.rejected = Counter("cellbox_rejected", "Requests refused, by reason",
                                ["reason"], registry=r)
        self.runs = Counter("cellbox_runs", "Finished runs, by verdict and language",
                            ["verdict", "language"], registry=r)
        self.latency = Histogram("cellbox_latency_seconds", "Submission to result (queue and "
                                 "run), by language", ["language"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.run_wall = Histogram("cellbox_run_wall_seconds", "Wall time of the run itself, "
                                  "by language", ["language"], buckets=LATENCY_BUCKETS,
                                  registry=r)
        self.queue = Gauge("cellbox_queue_depth", "Jobs waiting for a worker", registry=r)
        self.busy = Gauge("cellbox_pool_busy", "Jobs running now (embedded pool)", registry=r)
        self.workers = Gauge("cellbox_pool_workers", "Worker processes (embedded) or workers "
                             "that answered a ping (Celery)", registry=r)
        box = "Sum over this machine's boxes, from their lock records"
        self.repairs = Gauge("cellbox_box_repairs", f"Repairs after a dead holder. {box}",
                             registry=r)
        self.orphans = Gauge("cellbox_box_orphans_killed", f"Orphans killed at repairs. {box}",
                             registry=r)
        self.lock_waits = Gauge("cellbox_lock_waits", f"Lock acquisitions that waited. {box}",
                                registry=r)
        self.lock_wait_seconds = Gauge("cellbox_lock_wait_seconds", f"Time waited. {box}",
                                       registry=r)

    def finished(self, rec: Record) -> None:
        """Count a run once, when its record is done."""
        if rec.outcome is None or rec.finished is None:
            return
        self.runs.labels(str(rec.outcome["verdict"]), rec.label).inc()
        self.latency.labels(rec.label).observe(max(0.0, rec.finished - rec.created))
        self.run_wall.labels(rec.label).observe(float(str(rec.outcome.get("wall_time") or 0.0)))

    async def render(self, stats: PoolStats) -> bytes:
        self.queue.set(stats.queued)
        self.busy.set(stats.busy)
        self.workers.set(stats.workers)
        repairs, orphans, waits, seconds = await asyncio.to_thread(_box_counters)
        self.repairs.set(repairs)
        self.orphans.set(orphans)
        self.lock_waits.set(waits)
        self.lock_wait_seconds.set(seconds)
        return generate_latest(self.registry)


def _box_counters() -> tuple[int, int, int, float]:
    """Reads every box's lock record (no lock taken: records are replaced atomically)."""
    from cellbox.box import Boxes

    records = [st.record for st in Boxes().states()]
    return (sum(r.repairs for r in records), sum(r.orphans_killed for r in records),
            sum(r.waits for r in records), sum(r.wait_seconds for r in records))
