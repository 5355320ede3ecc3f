"""The box init (the C files here, ``boxinit.h`` has the overview): where to find it and how
to build it; ``plan`` is what the keeper tells it.

The keeper posix_spawns this small static program for every box: it makes the box's
namespaces, builds the root, and forks, confines and execs each program. No run copies the
Python interpreter, and a live box holds a C process, not a forked interpreter.

The binary is built on first use, from the C files with the system's gcc, into
``CACHE_DIR/boxinit-<hash>``, the hash covering every source file and the compiler flags, so
a changed source never runs an old binary; ``scripts/bootstrap.sh`` builds it ahead of time.
The build takes a lock, so concurrent first runs build it once, and then deletes the builds
of other sources that no process holds (``cache.py``: every process that may run a build
holds it). It is statically linked: after
pivot_root the box may have no dynamic loader. Root runs it before dropping anything, so the
cache must be root's alone: a binary or directory that another user could write is refused.

A user who is not root (rootless mode) runs root's binary if it is built (root's alone, it is
as safe to run as any system binary), else builds a copy of their own into
``$XDG_CACHE_HOME/cellbox`` (default ``~/.cache/cellbox``), which must be theirs alone: the
checkout may be read-only to them, and /var/cache/cellbox is root's.
"""

from __future__ import annotations

import fcntl
import hashlib
import os

from cellbox.errors import SandboxSetupError
from cellbox.boxinit import cache

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = tuple(sorted(n for n in os.listdir(HERE) if n.endswith((".c", ".h"))))
CACHE_DIR = "/var/cache/cellbox"
CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-static", "-std=gnu11")

_found: str | None = None


def _check_owned(path: str, uid: int, cache: str) -> None:
    st = os.stat(path)
    if st.st_uid != uid or st.st_mode & 0o022:
        who = "root's" if uid == 0 else f"uid {uid}'s"
        raise SandboxSetupError(
            f"{path} is not {who} alone (owner uid {st.st_uid}, mode {st.st_mode & 0o777:o}); "
            f"cellbox runs the box init from there: remove {cache}"
            + (" and run scripts/bootstrap.sh" if uid == 0 else ""))


def _user_cache() -> str:
    """Rootless mode: the user's own cache directory for the box init."""
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.path.join(os.environ["HOME"], ".cache") if os.environ.get("HOME") else "")
    if not os.path.isabs(base):
        raise SandboxSetupError(
            f"The box init is not built in {CACHE_DIR} and this user has no cache directory "
            "to build it in: set XDG_CACHE_HOME (or HOME), or have root run "
            "scripts/bootstrap.sh")
    return os.path.join(base, "cellbox")


def _build(target: str) -> None:
    import subprocess  # once per machine and source: not on every run's import path

    tmp = f"{target}.tmp{os.getpid()}"
    try:
        subprocess.run(["gcc", *CFLAGS, "-o", tmp,
                        *(os.path.join(HERE, n) for n in SOURCES if n.endswith(".c"))],
                       check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise SandboxSetupError("cellbox needs gcc to build its box init once; install it, or "
                                "run scripts/bootstrap.sh") from None
    except subprocess.CalledProcessError as e:
        raise SandboxSetupError(f"building the box init in {HERE} failed: "
                                f"{e.stderr.strip()}") from None
    os.chmod(tmp, 0o755)
    os.rename(tmp, target)


def _key() -> str:
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for name in SOURCES:
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f"\0{name}\0".encode() + f.read())
    return h.hexdigest()[:16]


def binary() -> str:
    """The path of the built box init, building it first if needed (once per process). The
    process holds it (``cache.hold``) so that no other build step deletes it."""
    global _found
    if _found is not None:
        return _found
    while True:
        target = _built()
        try:
            cache.hold(target)  # kept open for the process's life
        except FileNotFoundError:
            continue  # pruned by another build step just now: build it again
        _found = target
        return target


def _built() -> str:
    """The path of this source's build in the cache, built if it is not there."""
    name, uid, cache_dir = f"boxinit-{_key()}", os.geteuid(), CACHE_DIR
    if uid != 0:
        if os.path.exists(os.path.join(CACHE_DIR, name)):
            uid = 0  # root's build: run it (after the same checks)
        else:
            cache_dir = _user_cache()
    target = os.path.join(cache_dir, name)
    if not os.path.exists(target):
        os.makedirs(cache_dir, mode=0o755, exist_ok=True)
        _check_owned(cache_dir, uid, cache_dir)
        with open(os.path.join(cache_dir, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.exists(target):  # another process may have built it meanwhile
                _build(target)
                # builds of other sources, and of the single-file init that came before
                cache.prune(cache_dir, ("boxinit-", "init-"), name)
    _check_owned(cache_dir, uid, cache_dir)
    _check_owned(target, uid, cache_dir)
    return target
