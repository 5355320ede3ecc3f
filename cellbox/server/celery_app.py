"""The Celery side: the app both ``cellbox serve --broker`` and ``cellbox worker`` build, and
the task workers run. A worker also sends a finished Judge0 submission's callback.

A task carries up to ``TASK_JOBS`` submissions of one hand-off, so the worker's own work per
message (fetch, reserve, hand to a child, acknowledge) is paid once for several runs. Each
submission's Redis record stays the truth: the task runs its jobs in order, and skips those
whose record is done or gone.

Acks late with reject-on-worker-lost: a worker process killed in the middle of a run leaves
its message unacknowledged, so the broker hands it out again, and the redelivered task runs
again only the jobs not yet done. Each job counts its own starts in its record and, on a
third start (its run's worker died twice), records an Internal Error instead of running it
again: never lost, never stuck "In Queue", never run twice to completion.
"""

from __future__ import annotations

import functools
import logging
import time

import redis
from celery import Celery  # type: ignore[import-untyped]
from celery.signals import (  # type: ignore[import-untyped]
    after_setup_logger,
    worker_process_shutdown,
)

from cellbox.server.callbacks import deliver
from cellbox.server.jobs import (
    DIED_TWICE,
    MAX_ATTEMPTS,
    close_warm_pool,
    execute,
    internal_error,
)
from cellbox.server.records import QUEUED_INDEX, RECORD_KEY, RECORD_TTL, RedisRecords

QUEUE = "cellbox"  # the Celery queue (a Redis list of that name)
TASK = "cellbox.run_jobs"
# Submissions one task carries at most: enough to spread the worker's per-message work over
# several runs, few enough that a batch still spreads over the worker processes
TASK_JOBS = 8


@functools.cache
def make_app(broker: str) -> Celery:
    app = Celery("cellbox", broker=broker)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,  # outcomes go to the submission's record
        worker_prefetch_multiplier=1,  # a worker holds only the job it runs
        task_default_queue=QUEUE,
        task_serializer="json", accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK, bind=True)(_run_jobs)
    return app


# A job's start: no longer waiting; the record's state; unless it is gone or done, the
# attempt counted and the record marked running. Sent with EVAL: no script to load first,
# and none to lose if Redis restarts.
START = """
redis.call('ZREM', KEYS[2], ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'done' then return {state, 0} end
redis.call('HSET', KEYS[1], 'state', 'running', 'started', ARGV[1])
return {state, redis.call('HINCRBY', KEYS[1], 'attempts', 1)}
"""


def _run_jobs(task, jobs: list[tuple[str, dict[str, object]]]) -> None:  # noqa: ANN001
    """The task (``task``: Celery's, bound): each (submission id, job) in turn. A job's
    outcome goes to Redis in the round trip that starts the next job (a round trip is a wait
    on a busy machine)."""
    client = _redis(task.app.conf.broker_url)
    pending = client.pipeline()  # the previous job's writes, sent with the next start
    previous = None  # the submission whose record the pending writes end with
    for id, job in jobs:
        key = RECORD_KEY.format(id)
        pending.eval(START, 2, key, QUEUED_INDEX, str(time.time()), id)
        *written, (state, attempt) = pending.execute()
        _call_back(previous, written)
        previous = id
        if state is None:  # deleted (DELETE /submissions) or expired: nothing to run for
            previous = None
        elif state == b"done":  # redelivered after a death while calling back: call again
            pending.hgetall(key)
        else:
            outcome = internal_error(DIED_TWICE).to_dict() if attempt > MAX_ATTEMPTS \
                else execute(job)
            pending.hset(key, mapping=RedisRecords.done_fields(outcome))
            pending.expire(key, RECORD_TTL)
            pending.hgetall(key)
    _call_back(previous, pending.execute())


def _call_back(id: str | None, written: list[object]) -> None:
    """Sends submission ``id``'s callback, if it asks for one: ``written`` ends with its
    finished record."""
    if id is None or not written:
        return
    rec = RedisRecords.decode(written[-1], id)  # type: ignore[arg-type]
    if rec is not None and rec.request.get("callback_url"):
        deliver(rec)


@after_setup_logger.connect
def _quiet_tasks(**_: object) -> None:
    """No log line per task received and per task done: at a few hundred tasks a second they
    cost the workers more than a run (a failure is still logged)."""
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_process_shutdown.connect
def _close_pool(**_: object) -> None:
    close_warm_pool()  # the worker process's warm box and its lease


@functools.cache
def _redis(url: str) -> redis.Redis:
    """One client per worker process, made after the fork, on its first task."""
    return redis.Redis.from_url(url)
