"""The lock protocol: one flock per box, held for the whole of every operation.

``<lock_root>/<id>.lock`` is only ever locked, never replaced, so the kernel's flock is the
single truth about who holds a box: a holder that dies, however it dies, releases it.
``<lock_root>/<id>.json`` is the box record, rewritten atomically (rename) under the lock.
A record that names a run whose keeper is gone is what a crash leaves; the next holder
repairs it (see ``box``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cellbox.errors import BoxBusyError


@dataclass
class BoxRecord:
    initialised: bool = False
    owner_uid: int = 0
    owner_gid: int = 0
    quota: tuple[int, int] | None = None  # (blocks KB, inodes) given at --init
    created: float = 0.0
    runs: int = 0
    run: dict[str, Any] | None = None  # {"pid": keeper pid, "since": time} while running
    lease: bool = False  # a library lease: the box dies with its holder
    extra: dict[str, Any] = field(default_factory=dict)


class BoxLock:
    """An exclusive lease on one box. Use as a context manager."""

    def __init__(self, lock_root: str, box_id: int) -> None:
        self.lock_root = lock_root
        self.box_id = box_id
        self.fd: int | None = None
        self.waited = 0.0

    @property
    def record_path(self) -> str:
        return os.path.join(self.lock_root, f"{self.box_id}.json")

    def acquire(self, wait: float | None = 0.0) -> BoxLock:
        """Take the lock. ``wait``: 0 fails at once if busy, None waits forever, else seconds."""
        os.makedirs(self.lock_root, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.lock_root, f"{self.box_id}.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        start = time.monotonic()
        delay = 0.001
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
                hint = ("use --wait to wait for it" if not wait
                        else f"gave up after waiting {wait:g} s")
                raise BoxBusyError(f"Box {self.box_id} is busy: another cellbox process holds "
                                   f"it ({hint})")
            time.sleep(delay if wait is None else min(delay, wait - waited))
            delay = min(delay * 2, 0.05)
        self.fd = fd
        self.waited = time.monotonic() - start
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> BoxLock:
        if self.fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def read(self) -> BoxRecord:
        assert self.fd is not None, "read the record only under the lock"
        try:
            with open(self.record_path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return BoxRecord()
        except (ValueError, OSError):
            return BoxRecord(extra={"corrupt": True})
        if data.get("quota") is not None:
            data["quota"] = tuple(data["quota"])
        known = BoxRecord.__dataclass_fields__
        return BoxRecord(**{k: v for k, v in data.items() if k in known})

    def write(self, record: BoxRecord) -> None:
        assert self.fd is not None, "write the record only under the lock"
        tmp = f"{self.record_path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(record), f)
        os.rename(tmp, self.record_path)
