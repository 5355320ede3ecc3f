"""The user namespace of a rootless run (docs/security.md, "Rootless mode").

One uid and one gid are mapped: the box's uid/gid inside is the invoking user's outside, which
needs no privilege and no newuidmap helper. The kernel lets an unprivileged process write
a gid map only after ``setgroups`` is denied in the namespace, so the child keeps the
supplementary groups it was cloned with (the keeper's) and can never drop them.

Parent side: ``write_id_maps`` after the clone, then one byte on the lifeline. Child side:
``wait_for_id_maps`` first of all: until the maps exist its uid is the overflow uid, and
nothing it creates could be owned by anyone.
"""

from __future__ import annotations

import os
import signal

from cellbox.errors import SandboxSetupError


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_id_maps(pid: int, inside: tuple[int, int], outside: tuple[int, int],
                  ready_fd: int) -> None:
    """Map ``inside`` (uid, gid) to ``outside`` in the user namespace of child ``pid``, then
    release the child by writing a byte to ``ready_fd``. On failure the child is killed and
    reaped."""
    try:
        _write(f"/proc/{pid}/setgroups", "deny")
        _write(f"/proc/{pid}/uid_map", f"{inside[0]} {outside[0]} 1\n")
        _write(f"/proc/{pid}/gid_map", f"{inside[1]} {outside[1]} 1\n")
        os.write(ready_fd, b"\0")
    except OSError as e:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise SandboxSetupError(f"Cannot write the uid/gid maps of the box's user namespace: "
                                f"{e}") from e


def wait_for_id_maps(ready_fd: int) -> None:
    """Block until the keeper has written the maps (one byte); EOF means it died."""
    if not os.read(ready_fd, 1):
        os._exit(1)
