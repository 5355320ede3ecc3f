"""Host directories that hold a compilation's artifacts between its compile step and its runs.

They live under one private directory per user (``$TMPDIR/cellbox-builds-UID``), and each is
held by an flock of the process that made it, for as long as it exists. A process killed
before it removed its directories (a service worker, a judge) leaves them unlocked: the next
compilation of any process of that user removes them, so a crash leaves nothing that grows.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
import time

from cellbox.errors import SandboxSetupError

# A directory is claimed by its flock right after it is made: younger than this, an unlocked
# one may be in that instant, and is left alone.
CLAIM_GRACE = 10.0  # seconds

_held: dict[str, int] = {}  # this process's directories: path -> the fd holding the flock


def new_build_dir() -> str:
    """A new directory for one compilation, removed by ``remove_build_dir``."""
    root = _private_root()
    _sweep(root)
    path = tempfile.mkdtemp(dir=root)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held[path] = fd
    return path


def remove_build_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)


def _private_root() -> str:
    uid = os.geteuid()
    root = os.path.join(tempfile.gettempdir(), f"cellbox-builds-{uid}")
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise SandboxSetupError(f"{root} is not a private directory of yours (mode 0700): "
                                "remove it, or set TMPDIR to another directory")
    return root


def _sweep(root: str) -> None:
    """Remove the directories that no live process holds."""
    old = time.time() - CLAIM_GRACE
    for name in os.listdir(root):
        path = os.path.join(root, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # gone already, or not a directory
        try:
            if os.fstat(fd).st_mtime < old:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(path, ignore_errors=True)
        except BlockingIOError:
            pass  # its process is alive
        finally:
            os.close(fd)
