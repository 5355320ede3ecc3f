"""The Celery side: the app both ``cellbox serve --broker`` and ``cellbox worker`` build, and
the task workers run. A worker also sends a finished Judge0 submission's callback.

Acks late with reject-on-worker-lost: a worker process killed in the middle of a run leaves
its message unacknowledged, so the broker hands it out again. The task counts its attempts in
the submission's Redis record and, on a third start (the run's worker died twice), records an
Internal Error instead of running it again: never lost, never stuck "In Queue".
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
from redis.commands.core import Script

from cellbox.server.callbacks import deliver
from cellbox.server.jobs import (
    DIED_TWICE,
    MAX_ATTEMPTS,
    close_warm_pool,
    execute,
    internal_error,
)
from cellbox.server.records import RECORD_KEY, RECORD_TTL, RedisRecords

QUEUE = "cellbox"  # the Celery queue (a Redis list of that name)


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
    app.task(name="cellbox.run", bind=True)(_run_task)
    return app


# A task's start, in one round trip: the record's state; unless it is gone or done, the
# attempt counted and the record marked running
START = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'done' then return {state, 0} end
redis.call('HSET', KEYS[1], 'state', 'running', 'started', ARGV[1])
return {state, redis.call('HINCRBY', KEYS[1], 'attempts', 1)}
"""


def _run_task(task, id: str, job: dict[str, object]) -> None:  # noqa: ANN001 - a Celery Task
    client, start = _redis(task.app.conf.broker_url)
    key = RECORD_KEY.format(id)
    state, attempt = start(keys=[key], args=[str(time.time())])
    if state is None:  # deleted (DELETE /submissions) or expired: nothing to run for
        return
    if state == b"done":  # redelivered after a death while calling back: call again
        raw = client.hgetall(key)
    else:
        outcome = internal_error(DIED_TWICE).to_dict() if attempt > MAX_ATTEMPTS \
            else execute(job)
        pipe = client.pipeline()
        pipe.hset(key, mapping=RedisRecords.done_fields(outcome))
        pipe.expire(key, RECORD_TTL)
        pipe.hgetall(key)
        raw = pipe.execute()[-1]
    rec = RedisRecords.decode(raw, id)
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
def _redis(url: str) -> tuple[redis.Redis, Script]:
    """One client per worker process (made after the fork, on its first task), and START."""
    client = redis.Redis.from_url(url)
    return client, client.register_script(START)
