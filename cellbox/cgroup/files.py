"""Reading and writing cgroup files: the helpers both backends share."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from cellbox.errors import SandboxSetupError


def write(path: str, value: str | int) -> None:
    """One write(2), as the kernel wants for cgroup files; errors raise OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def keyed(text: str, key: str) -> int:
    """The value of ``key`` in a flat-keyed file ("key value" lines); 0 if absent."""
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


def swap_in_use() -> bool:
    with open("/proc/swaps") as f:
        return len(f.readlines()) > 1


def wait_until(done: Callable[[], bool], timeout: float, failure: str) -> None:
    """Poll ``done`` until it holds; SandboxSetupError(failure) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SandboxSetupError(failure)
        time.sleep(0.002)


def rmdir_when_empty(d: str) -> None:
    """Remove cgroup ``d``, waiting up to 1 s for its last task to be torn down."""
    for _ in range(200):
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:  # EBUSY: the last task is still being torn down
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.005)
    raise SandboxSetupError(f"Cannot remove cgroup {d}: it still has processes")
