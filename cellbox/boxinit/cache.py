"""The cache of built box inits: each process that may exec a build holds a shared lock on
it for its whole life (``hold``), and the build step deletes the builds of other sources that
no process holds (``prune``), so old builds do not pile up and a build in use stays."""

from __future__ import annotations

import fcntl
import os


def hold(path: str) -> int:
    """Open ``path`` and lock it shared; the fd (close-on-exec) is for the caller to keep.
    FileNotFoundError if ``path`` is gone, or was pruned while we waited for the lock."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # pruned (and rebuilt) meanwhile
            raise FileNotFoundError(path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def prune(cache: str, prefix: str | tuple[str, ...], keep: str) -> list[str]:
    """Delete each ``prefix*`` file in ``cache`` but ``keep`` that no process holds; return
    their names. Call it under the cache's build lock, so no build is half written."""
    removed = []
    for name in sorted(os.listdir(cache)):
        if not name.startswith(prefix) or name == keep:
            continue
        try:
            fd = os.open(os.path.join(cache, name), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # gone, or not a file of ours
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a process runs it
        try:
            os.unlink(os.path.join(cache, name))
            removed.append(name)
        finally:
            os.close(fd)
    return removed
