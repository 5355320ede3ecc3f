"""Where jobs run: ``EmbeddedBackend`` (a pool of worker processes on this machine) or
``CeleryBackend`` (workers anywhere, through a Redis broker; records kept in Redis).

Both keep, per submission, a ``Record``: its state (queued, running, done), times and, once
done, the ``Outcome`` dict. A job is never lost: a worker that dies in the middle of a run
gets the job retried once, and a second death makes it an Internal Error.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol

from cellbox.server.jobs import DIED_TWICE, MAX_ATTEMPTS, Job, Submission, execute, internal_error
from cellbox.server.records import (
    JUDGE0_INDEX,
    QUEUED_INDEX,
    RECORD_KEY,
    RECORD_TTL,
    Record,
    RedisRecords,
    SqliteRecords,
    new_id,
)


class Overloaded(Exception):
    """The queue is full: the client should retry later (HTTP 429)."""


class NoWorker(Exception):
    """No worker can take the job (HTTP 503)."""


@dataclass(frozen=True)
class PoolStats:
    workers: int  # processes that can run jobs (embedded) or that answered a ping (Celery)
    busy: int  # jobs running now
    queued: int  # jobs waiting for a worker


class Backend(Protocol):
    async def submit(self, jobs: Sequence[Submission], owner: str | None) -> list[Record]:
        """Queue every job or none (Overloaded, NoWorker): a batch is one hand-off."""
    async def get_many(self, ids: Sequence[str]) -> list[Record | None]:
        """Each id's record (None for an unknown id), in one read of the store."""
    async def wait(self, id: str, timeout: float) -> Record | None:
        """The record once done, or as it is at ``timeout``; None for an unknown id."""
    async def page(self, offset: int, count: int) -> tuple[list[Record], int]:
        """Judge0 submissions, newest first, and their total."""
    async def delete(self, id: str) -> None: ...
    async def stats(self) -> PoolStats: ...
    async def size(self) -> int:
        """Bytes the record store takes."""
    async def close(self) -> None: ...


# -- embedded ---------------------------------------------------------------------------------

class EmbeddedBackend:
    """A ``ProcessPoolExecutor`` whose processes come from a forkserver: a fresh,
    single-threaded interpreter, so no worker inherits the server's threads. Records are in
    a ``SqliteRecords`` store (at most ``max_records`` finished ones are kept); the jobs a
    stopped server left unfinished there are run again when it starts."""

    def __init__(self, workers: int, max_queue: int, on_done: Callable[[Record], None],
                 state_dir: str | None = None, max_records: int = 100_000) -> None:
        self.on_done = on_done  # called once per finished record (metrics, callbacks)
        self.workers = workers
        self.max_queue = max_queue
        self.store = SqliteRecords(state_dir, max_records)
        self._live: dict[str, Record] = {}  # queued or running
        self._futures: dict[str, Future[dict[str, object]]] = {}
        self._done: dict[str, asyncio.Event] = {}  # set when the record is done
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool = self._new_pool()
        for rec, job in self.store.unfinished():  # a restart loses no submission
            rec.state = "queued"
            self._start(rec, job)

    def _new_pool(self) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["cellbox.server.jobs"])  # workers start with it imported
        return ProcessPoolExecutor(self.workers, mp_context=ctx)

    async def submit(self, jobs: Sequence[Submission], owner: str | None) -> list[Record]:
        if len(self._live) + len(jobs) > self.workers + self.max_queue:
            raise Overloaded(f"{len(self._live)} submissions are queued or running, the "
                             "most this server takes is "
                             f"{self.workers + self.max_queue}; retry later")
        added = [(Record(new_id(), job.label, request=request, owner=owner), job.to_dict())
                 for job, request in jobs]
        self.store.add(added)
        for rec, plain in added:
            self._start(rec, plain)
        await asyncio.sleep(0)  # let the tasks hand the jobs to the pool
        return [rec for rec, _ in added]

    def _start(self, rec: Record, job: dict[str, object]) -> None:
        self._live[rec.id] = rec
        self._done[rec.id] = asyncio.Event()
        task = asyncio.create_task(self._run(rec, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, rec: Record, job: dict[str, object]) -> None:
        outcome = internal_error(DIED_TWICE).to_dict()
        for _ in range(MAX_ATTEMPTS):
            pool = self._pool
            try:
                fut = pool.submit(execute, job)
            except BrokenProcessPool:
                self._replace(pool)
                continue
            self._futures[rec.id] = fut
            try:
                outcome = await asyncio.wrap_future(fut)
                break
            except BrokenProcessPool:
                # A worker died. The executor then ends its other workers too, so every job
                # in flight in that pool comes here and is charged an attempt.
                self._replace(pool)
            finally:
                self._futures.pop(rec.id, None)
        rec.state, rec.outcome, rec.finished = "done", outcome, time.time()
        self.store.finish(rec)
        self._live.pop(rec.id, None)
        self._done.pop(rec.id).set()
        self.on_done(rec)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:  # the first job to notice replaces it, once
            self._pool = self._new_pool()
            broken.shutdown(wait=False, cancel_futures=True)

    async def get_many(self, ids: Sequence[str]) -> list[Record | None]:
        stored = self.store.get_many([id for id in ids if id not in self._live])
        return [self._live_record(id) if id in self._live else stored.get(id) for id in ids]

    def _live_record(self, id: str) -> Record:
        rec = self._live[id]
        if rec.state == "queued":
            fut = self._futures.get(id)
            if fut is not None and fut.running():
                rec.state = "running"
        return rec

    async def wait(self, id: str, timeout: float) -> Record | None:
        done = self._done.get(id)
        if done is not None:  # told when it ends: no polling
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        return (await self.get_many([id]))[0]

    async def page(self, offset: int, count: int) -> tuple[list[Record], int]:
        recs, total = self.store.page(offset, count)
        return [self._live.get(r.id, r) for r in recs], total

    async def delete(self, id: str) -> None:
        self.store.delete(id)

    async def stats(self) -> PoolStats:
        running = sum(f.running() for f in self._futures.values())
        return PoolStats(self.workers, running, len(self._futures) - running)

    async def size(self) -> int:
        return self.store.size()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.store.close()


# -- Celery with Redis ------------------------------------------------------------------------

class CeleryBackend:
    """Enqueues to Celery; reads records from Redis. ``max_queue``: most jobs no worker has
    started (``QUEUED_INDEX``) before 429. Worker liveness is pinged at most every
    ``ping_every`` s; a ping waits its whole timeout for replies, so once a worker has
    answered, the count is renewed in the background and no request waits for a ping."""

    def __init__(self, broker: str, max_queue: int, on_done: Callable[[Record], None],
                 ping_every: float = 5.0) -> None:
        import redis.asyncio

        # Celery loads with a broker only
        from cellbox.server.celery_app import QUEUE, TASK, TASK_JOBS, make_app

        self.app = make_app(broker)
        self.queue, self.task, self.task_jobs = QUEUE, TASK, TASK_JOBS
        self.redis = redis.asyncio.Redis.from_url(broker)
        self.max_queue = max_queue
        self.on_done = on_done  # called once per finished record, by the server that reads it
        self.ping_every = ping_every
        self._workers = (0, 0.0)  # (count, when pinged)
        self._pinging: asyncio.Task[None] | None = None

    async def _alive(self) -> int:
        count, when = self._workers
        if count == 0:
            await self._ping()
        elif time.monotonic() - when > self.ping_every and self._pinging is None:
            self._pinging = asyncio.create_task(self._ping())
        return self._workers[0]

    async def _ping(self) -> None:
        try:
            replies = await asyncio.to_thread(self.app.control.ping, timeout=0.5)
            self._workers = (len(replies or []), time.monotonic())
        finally:
            self._pinging = None

    async def submit(self, jobs: Sequence[Submission], owner: str | None) -> list[Record]:
        if await self._alive() == 0:
            raise NoWorker("no cellbox worker is connected to the broker; start one with "
                           "'cellbox worker --broker URL'")
        queued = await self._queued()
        if queued + len(jobs) > self.max_queue:
            raise Overloaded(f"{queued} submissions are waiting, the most this server "
                             f"queues is {self.max_queue}; retry later")
        recs = [Record(new_id(), job.label, request=request, owner=owner)
                for job, request in jobs]
        pipe = self.redis.pipeline(transaction=False)  # one round trip for all
        for rec in recs:
            key = RECORD_KEY.format(rec.id)
            pipe.hset(key, mapping=RedisRecords.new_fields(rec))
            pipe.expire(key, RECORD_TTL)
            pipe.zadd(QUEUED_INDEX, {rec.id: rec.created})
            if rec.judge0:
                pipe.zadd(JUDGE0_INDEX, {rec.id: rec.created})
        await pipe.execute()
        tasks = [(rec.id, job.to_dict()) for rec, (job, _) in zip(recs, jobs, strict=True)]
        await asyncio.to_thread(self._send, tasks)  # one thread hop for all
        return recs

    async def _queued(self) -> int:
        """Jobs no worker has started. Entries older than a record (a server that died
        between writing the records and sending their tasks) no longer count."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(QUEUED_INDEX, 0, time.time() - RECORD_TTL)
        pipe.zcard(QUEUED_INDEX)
        return int((await pipe.execute())[-1])

    def _send(self, jobs: list[tuple[str, dict[str, object]]]) -> None:
        """Publish the jobs, ``task_jobs`` to a task, on one producer (Celery's client is
        synchronous)."""
        with self.app.producer_or_acquire() as producer:
            for i in range(0, len(jobs), self.task_jobs):
                part = jobs[i:i + self.task_jobs]
                # argsrepr: what logs and monitors show of the task, its submissions' ids (the
                # jobs' sources are the user's, and their repr costs more than the rest)
                self.app.send_task(self.task, (part,), queue=self.queue, producer=producer,
                                   argsrepr=repr([id for id, _ in part]))

    async def get_many(self, ids: Sequence[str]) -> list[Record | None]:
        pipe = self.redis.pipeline(transaction=False)
        for id in ids:
            pipe.hgetall(RECORD_KEY.format(id))
        raws = await pipe.execute()
        recs = [RedisRecords.decode(raw, id) for raw, id in zip(raws, ids, strict=True)]
        # Workers cannot reach this server's metrics: count a run when a server first reads
        # it done (HSETNX makes that once, across servers; one read already counted says so).
        done = [rec for rec, raw in zip(recs, raws, strict=True)
                if rec is not None and rec.state == "done" and b"counted" not in raw]
        if done:
            for rec in done:
                pipe.hsetnx(RECORD_KEY.format(rec.id), "counted", 1)
            for rec, first in zip(done, await pipe.execute(), strict=True):
                if first:
                    self.on_done(rec)
        return recs

    async def wait(self, id: str, timeout: float, poll: float = 0.02) -> Record | None:
        """Polls Redis (a worker anywhere writes the record)."""
        deadline = time.monotonic() + timeout
        while True:
            rec = (await self.get_many([id]))[0]
            if rec is None or rec.state == "done" or time.monotonic() >= deadline:
                return rec
            await asyncio.sleep(poll)

    async def page(self, offset: int, count: int) -> tuple[list[Record], int]:
        # Records expire on their own; drop their index entries first.
        await self.redis.zremrangebyscore(JUDGE0_INDEX, 0, time.time() - RECORD_TTL)
        raw = await self.redis.zrevrange(JUDGE0_INDEX, offset, offset + count - 1)
        ids = [bytes(i).decode() for i in raw]  # type: ignore[arg-type]
        recs = await self.get_many(ids)
        return [r for r in recs if r is not None], int(await self.redis.zcard(JUDGE0_INDEX))

    async def delete(self, id: str) -> None:
        await self.redis.delete(RECORD_KEY.format(id))
        await self.redis.zrem(JUDGE0_INDEX, id)

    async def stats(self) -> PoolStats:
        workers = await self._alive()
        return PoolStats(workers, 0, await self._queued())

    async def size(self) -> int:
        return int((await self.redis.info("memory"))["used_memory"])

    async def close(self) -> None:
        if self._pinging is not None:
            self._pinging.cancel()
        await self.redis.aclose()
