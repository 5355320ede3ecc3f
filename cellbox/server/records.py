"""Submission records: ``Record`` and its two stores, ``SqliteRecords`` and ``RedisRecords``.

The embedded store is one SQLite database: in memory by default, or the file
``STATE_DIR/records.sqlite`` when the service config sets ``state_dir``, so that records (and
the jobs not yet finished) survive a restart of the server. With a broker the records are
Redis hashes (``RedisRecords``), which the server and the workers share.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cellbox.errors import ConfigError

DB_NAME = "records.sqlite"
LOCK_NAME = "lock"  # held while a server uses the directory: two would run the same jobs
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY, label TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL,
    finished REAL, outcome TEXT, request TEXT NOT NULL, judge0 INTEGER NOT NULL,
    job TEXT,  -- the job, kept until it is done: a restart runs it again
    owner TEXT  -- the API token that made it (NULL on a server without tokens)
);
CREATE INDEX IF NOT EXISTS records_judge0 ON records (judge0, created);
"""


@dataclass
class Record:
    id: str
    label: str  # the language name, or "command": the metrics' label
    state: str = "queued"  # queued | running | done
    created: float = field(default_factory=time.time)
    finished: float | None = None
    outcome: dict[str, object] | None = None
    request: dict[str, object] = field(default_factory=dict)  # what the API keeps to answer
    owner: str | None = None  # the API token that made it; None on a server without tokens

    @property
    def judge0(self) -> bool:
        """Made through the Judge0 API (its tokens and native ids are not interchangeable)."""
        return "language_id" in self.request


def new_id() -> str:
    """A submission's id: a random UUID, in the form Judge0 gives its tokens."""
    return str(uuid.uuid4())


class SqliteRecords:
    """Used from the server's event loop thread only. Keeps at most ``max_records`` finished
    records: the oldest go first."""

    def __init__(self, state_dir: str | None, max_records: int) -> None:
        path = ":memory:"
        self._lock: int | None = None
        if state_dir is not None:
            self._lock = _lock_dir(state_dir)
            path = os.path.join(state_dir, DB_NAME)
        try:
            self.db = sqlite3.connect(path, isolation_level=None)  # autocommit
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # durable enough: WAL, no fsync each
            self.db.executescript(SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(records)")}
            if "owner" not in columns:  # a store written before records had owners
                self.db.execute("ALTER TABLE records ADD COLUMN owner TEXT")
        except sqlite3.Error as e:
            raise ConfigError(f"Cannot open the service's record store {path}: {e}") from None
        self.max_records = max_records
        self._inserted = 0

    def add(self, added: list[tuple[Record, dict[str, object]]]) -> None:
        """New records with their jobs, in one transaction."""
        rows = [(rec.id, rec.label, rec.state, rec.created, rec.finished, None,
                 json.dumps(rec.request), int(rec.judge0), json.dumps(job), rec.owner)
                for rec, job in added]
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        before, self._inserted = self._inserted, self._inserted + len(rows)
        if before // 1000 != self._inserted // 1000:
            self._trim()

    def finish(self, rec: Record) -> None:
        self.db.execute("UPDATE records SET state = ?, finished = ?, outcome = ?, job = NULL "
                        "WHERE id = ?", (rec.state, rec.finished, json.dumps(rec.outcome),
                                         rec.id))

    def get_many(self, ids: list[str]) -> dict[str, Record]:
        """The records of ``ids`` that exist, by id, in one query."""
        marks = ", ".join("?" * len(ids))
        rows = self.db.execute(f"SELECT * FROM records WHERE id IN ({marks})", ids)
        return {rec.id: rec for rec in map(_record, rows)}

    def page(self, offset: int, count: int) -> tuple[list[Record], int]:
        """Judge0 submissions, newest first, and how many there are."""
        rows = self.db.execute("SELECT * FROM records WHERE judge0 = 1 ORDER BY created DESC "
                               "LIMIT ? OFFSET ?", (count, offset)).fetchall()
        total = self.db.execute("SELECT count(*) FROM records WHERE judge0 = 1").fetchone()[0]
        return [_record(r) for r in rows], int(total)

    def delete(self, id: str) -> None:
        self.db.execute("DELETE FROM records WHERE id = ?", (id,))

    def unfinished(self) -> list[tuple[Record, dict[str, object]]]:
        """Records a stopped server left queued or running, with their jobs, oldest first."""
        rows = self.db.execute("SELECT * FROM records WHERE state != 'done' ORDER BY created"
                               ).fetchall()
        return [(_record(r), json.loads(r[8])) for r in rows]

    def size(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * int(self.db.execute("PRAGMA page_size").fetchone()[0])

    def _trim(self) -> None:
        done = self.db.execute("SELECT count(*) FROM records WHERE state = 'done'").fetchone()[0]
        if done > self.max_records:
            self.db.execute("DELETE FROM records WHERE id IN (SELECT id FROM records WHERE "
                            "state = 'done' ORDER BY created LIMIT ?)",
                            (done - self.max_records,))

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            os.close(self._lock)  # drops the flock


def _lock_dir(state_dir: str) -> int:
    """Create ``state_dir`` (0700) and hold its lock file's flock, or fail: one server."""
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(state_dir, LOCK_NAME),
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise ConfigError(f"Cannot use the service's state_dir {state_dir}: "
                          f"{e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"Another cellbox serve uses the state_dir {state_dir}: give each "
                          "server a state_dir of its own") from None
    return fd


def _record(row: tuple[object, ...]) -> Record:
    id, label, state, created, finished, outcome, request = row[:7]
    return Record(str(id), str(label), str(state), float(str(created)),
                  float(str(finished)) if finished is not None else None,
                  json.loads(str(outcome)) if outcome is not None else None,
                  json.loads(str(request)), str(row[9]) if row[9] is not None else None)


RECORD_KEY = "cellbox:sub:{}"
RECORD_TTL = 24 * 3600  # seconds a record is kept in Redis
JUDGE0_INDEX = "cellbox:judge0"  # sorted set of Judge0 tokens by creation time (GET /submissions)
# Sorted set of the submissions no worker has started yet, by creation time (max_queue): a
# Celery task carries several, so the broker's queue length does not count them
QUEUED_INDEX = "cellbox:queued"


class RedisRecords:
    """Records as Redis hashes, shared by the server (async) and workers (sync)."""

    @staticmethod
    def new_fields(rec: Record) -> dict[Any, Any]:
        fields = {"state": rec.state, "label": rec.label, "created": str(rec.created),
                  "request": json.dumps(rec.request)}
        return fields | ({"owner": rec.owner} if rec.owner is not None else {})

    @staticmethod
    def decode(raw: dict[Any, Any], id: str) -> Record | None:
        if not raw:
            return None
        d = {k.decode(): v.decode() for k, v in raw.items()}
        outcome = json.loads(d["outcome"]) if "outcome" in d else None
        finished = float(d["finished"]) if "finished" in d else None
        return Record(id, d["label"], d["state"], float(d["created"]), finished, outcome,
                      json.loads(d.get("request", "{}")), d.get("owner"))

    @staticmethod
    def done_fields(outcome: dict[str, object]) -> dict[Any, Any]:
        return {"state": "done", "outcome": json.dumps(outcome), "finished": str(time.time())}
