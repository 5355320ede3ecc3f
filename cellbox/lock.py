"""The lock protocol: one flock per box, held for the whole of every operation.

``<lock_root>/<id>.lock`` is only ever locked, never replaced, so the kernel's flock is the
single truth about who holds a box: a holder that dies, however it dies, releases it.
``<lock_root>/<id>.json`` is the box record, rewritten under the lock in place, in one write
of one page (``RECORD_SIZE``): a writer killed at any instant leaves the old record or the new
one. (A temporary file renamed over the record would cost a disk write on ext4, whose
``auto_da_alloc`` flushes a file renamed over another: about 1 ms per record, two per run.)
A record that names a run or a lease whose holder is gone is what a crash leaves; the next
holder repairs it (see ``box``). Readers that must not disturb live boxes (``cellbox boxes``)
ask the kernel who holds a lock through /proc/locks instead of taking it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from cellbox.errors import BoxBusyError, ConfigError

# A record is written as one page, padded with spaces (which JSON ignores), so that the write
# is whole or absent whatever kills its writer: the page cache takes a page in one copy.
RECORD_SIZE = 4096
READ_TRIES = 3  # a reader without the lock may meet a write half copied: it reads again


@dataclass
class BoxRecord:
    initialised: bool = False
    owner_uid: int = 0
    owner_gid: int = 0
    quota: tuple[int, int] | None = None  # (blocks KB, inodes) given at --init
    created: float = 0.0
    runs: int = 0
    run: dict[str, Any] | None = None  # {"pid": keeper pid, "since": time} while running
    lease: dict[str, Any] | None = None  # {"pid", "since"} of a library lease: the box dies
    #                                      with its holder
    warm: dict[str, Any] | None = None  # {"pid", "start"}: the box init a keeper daemon keeps
    #                                     alive between runs (``box.WarmInits``)
    # Monitoring counters, kept for the box's whole life (they survive cleanup and repair).
    repairs: int = 0  # times a holder found what a dead holder left, and repaired it
    orphans_killed: int = 0  # processes found alive in the box's cgroup at a repair
    waits: int = 0  # lock acquisitions that had to wait for another holder
    wait_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def reset(self) -> BoxRecord:
        """An uninitialised record that keeps the counters."""
        return BoxRecord(repairs=self.repairs, orphans_killed=self.orphans_killed,
                         waits=self.waits, wait_seconds=self.wait_seconds)


def read_record(path: str) -> BoxRecord:
    """The record at ``path``. Safe without the lock too: a page being written as it is read
    may show a mix of the old and new records, which does not parse; it is read again."""
    for _ in range(READ_TRIES):
        try:
            with open(path, "rb") as f:
                return _parse_record(f.read())
        except FileNotFoundError:
            return BoxRecord()
        except (ValueError, TypeError, OSError):
            pass
    return BoxRecord(extra={"corrupt": True})


def _parse_record(raw: bytes) -> BoxRecord:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if data.get("quota") is not None:
        data["quota"] = tuple(data["quota"])
    if isinstance(data.get("lease"), bool):  # records of cellbox 0.1
        data["lease"] = {"pid": 0, "since": 0.0} if data["lease"] else None
    known = BoxRecord.__dataclass_fields__
    return BoxRecord(**{k: v for k, v in data.items() if k in known})


def flock_holders() -> dict[tuple[int, int], int]:
    """(device, inode) -> pid of every flock held on this machine, from /proc/locks."""
    holders: dict[tuple[int, int], int] = {}
    with open("/proc/locks") as f:
        for line in f:
            # "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; "-> " marks waiters
            parts = line.split()
            if len(parts) < 6 or parts[1] != "FLOCK":
                continue
            major, minor, inode = parts[5].split(":")
            holders[(os.makedev(int(major, 16), int(minor, 16)), int(inode))] = int(parts[4])
    return holders


class BoxLock:
    """An exclusive lease on one box. Use as a context manager."""

    def __init__(self, lock_root: str, box_id: int) -> None:
        self.lock_root = lock_root
        self.box_id = box_id
        self.fd: int | None = None
        self.waited = 0.0
        # The record as this holder last read or wrote it: under the lock nobody else
        # changes it, so it is read from the file once per holding.
        self._known: bytes | None = None

    @property
    def lock_path(self) -> str:
        return os.path.join(self.lock_root, f"{self.box_id}.lock")

    @property
    def record_path(self) -> str:
        return os.path.join(self.lock_root, f"{self.box_id}.json")

    def holder(self, holders: dict[tuple[int, int], int] | None = None) -> int | None:
        """The pid holding this box's lock now (None: free), without taking it."""
        try:
            st = os.stat(self.lock_path)
        except FileNotFoundError:
            return None
        return (flock_holders() if holders is None else holders).get((st.st_dev, st.st_ino))

    def acquire(self, wait: float | None = 0.0) -> BoxLock:
        """Take the lock. ``wait``: 0 fails at once if busy, None waits forever, else seconds."""
        try:
            os.makedirs(self.lock_root, mode=0o700, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except PermissionError:
            raise ConfigError(
                f"Cannot use lock_root {self.lock_root}: permission denied. It belongs to "
                "another user (root's boxes need root: use sudo); as a user of your own, "
                "use your own box_root and lock_root (rootless mode, docs/security.md)"
            ) from None
        start = time.monotonic()
        delay = 0.001
        tries = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise
            waited = time.monotonic() - start
            if wait is not None and waited >= wait:
                os.close(fd)
                raise BoxBusyError(self._busy_message(wait), waited=bool(wait))
            time.sleep(delay if wait is None else min(delay, wait - waited))
            delay = min(delay * 2, 0.05)
            tries += 1
        self.fd = fd
        self.waited = time.monotonic() - start if tries else 0.0  # (taken at once: no wait)
        return self

    def _busy_message(self, wait: float) -> str:
        """What holds the box; the front end adds how to wait (an option or a keyword)."""
        holder = self.holder()
        who = f"cellbox process {holder}" if holder else "another cellbox process"
        record = read_record(self.record_path)
        doing = " (running a program)" if record.run else (
            " (a library lease)" if record.lease else "")
        waited = f"; gave up after waiting {wait:g} s" if wait else ""
        return f"Box {self.box_id} is busy: {who} holds it{doing}{waited}"

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None
            self._known = None

    def __enter__(self) -> BoxLock:
        if self.fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def read(self) -> BoxRecord:
        """The box's record, a copy of its own for the caller to change."""
        assert self.fd is not None, "read the record only under the lock"
        if self._known is not None:
            return _parse_record(self._known)
        record = read_record(self.record_path)
        if not record.extra.get("corrupt"):
            self._known = json.dumps(vars(record)).encode()
        return record

    def write(self, record: BoxRecord) -> None:
        assert self.fd is not None, "write the record only under the lock"
        data = json.dumps(vars(record)).encode()  # (plain data: no deep copy)
        if len(data) > RECORD_SIZE:  # (a few hundred bytes: numbers and small dicts)
            raise ValueError(f"box {self.box_id}'s record has grown to {len(data)} bytes, "
                             f"more than the {RECORD_SIZE} written at once")
        fd = os.open(self.record_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            written = os.pwrite(fd, data.ljust(RECORD_SIZE), 0)
        finally:
            os.close(fd)
        if written != RECORD_SIZE:  # (a full file system: nothing else shortens it)
            raise OSError(f"box {self.box_id}'s record: {written} of {RECORD_SIZE} bytes "
                          f"written to {self.record_path}")
        self._known = data
