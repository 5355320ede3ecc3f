"""Channels between boxes: two boxes run at the same time and try to talk.

One box listens (sets a channel up, publishes a token, waits), the other talks (sends a token
and looks for what the listener published), with tests/security/programs/channel.py. Neither
side may get anything. The control runs both roles inside one box, where the same channel
does work, so no test passes because the program is broken.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tests.support.boxes import PY, InitBox
from tests.support.hostile import HOSTILE_PROGRAMS as PROGRAMS
from tests.support.hostile import assert_no_channel, dir_listing, listen_and_talk
from tests.support.proof import output, run_attack, run_checked

pytestmark = pytest.mark.security

def test_dev_shm(box: InitBox, box2: InitBox) -> None:
    """A file in /dev/shm: each box has its own."""
    assert_no_channel(box, box2, "shm")


def test_tmp(box: InitBox, box2: InitBox) -> None:
    """A file in /tmp: each box has its own."""
    assert_no_channel(box, box2, "tmp")


def test_sysv_shared_memory(box: InitBox, box2: InitBox) -> None:
    """A SysV shared memory segment with a well-known key, mode 0666."""
    assert_no_channel(box, box2, "sysv-shm")


def test_sysv_semaphore(box: InitBox, box2: InitBox) -> None:
    """A SysV semaphore with a well-known key, mode 0666."""
    assert_no_channel(box, box2, "sysv-sem")


def test_sysv_message_queue(box: InitBox, box2: InitBox) -> None:
    """A SysV message queue with a well-known key, mode 0666."""
    assert_no_channel(box, box2, "sysv-msg")


def test_posix_message_queue(box: InitBox, box2: InitBox) -> None:
    """A POSIX message queue with a well-known name, mode 0666."""
    assert_no_channel(box, box2, "mqueue")


def test_abstract_unix_socket(box: InitBox, box2: InitBox) -> None:
    """An abstract unix socket (no file, no permissions: only the network namespace)."""
    assert_no_channel(box, box2, "abstract")


def test_unix_socket_in_a_shared_directory(box: InitBox, box2: InitBox,
                                           canary_dir: Path) -> None:
    """A unix socket file in a world-writable host directory bound into both boxes: the bind
    is read-only, so no socket appears in it. Control (one box) uses a read-write bind."""
    shared = canary_dir / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    before = dir_listing(canary_dir)
    heard, said = listen_and_talk(box, box2, "unix-shared", (f"--dir=/shared={shared}",))
    assert b"GOT" not in heard and b"SAW" not in said, (heard, said)
    assert dir_listing(canary_dir) == before
    control, _ = run_checked(box, PY, "channel.py", "both", "unix-shared", "0",
                             opts=("-p", f"--dir=/shared={shared}:rw"))
    assert b"GOT" in control.stdout, output(control)


def test_signals(box: InitBox, box2: InitBox) -> None:
    """SIGUSR1 to kill(-1) and to every pid up to 200."""
    assert_no_channel(box, box2, "signal")


def test_processes_in_proc(box: InitBox, box2: InitBox) -> None:
    """A process named after the token, looked for in the other box's /proc."""
    assert_no_channel(box, box2, "proc")


@pytest.mark.cgroup2
def test_loopback_tcp(box: InitBox, box2: InitBox) -> None:
    """A TCP listener on the box's 127.0.0.1."""
    assert_no_channel(box, box2, "tcp")


def test_loopback_udp(box: InitBox, box2: InitBox) -> None:
    """A UDP socket on the box's 127.0.0.1."""
    assert_no_channel(box, box2, "udp")


@pytest.fixture
def shared_file(canary_dir: Path) -> Path:
    lockfile = canary_dir / "lockfile"
    lockfile.write_text("shared, read-only\n")
    lockfile.chmod(0o644)
    return lockfile


def test_file_locks_on_a_shared_read_only_file(box: InitBox, box2: InitBox,
                                               shared_file: Path) -> None:
    """flock and a POSIX lock on a file both boxes see through a read-only bind: the other
    box, and the host, must not see them."""
    def host_sees_no_lock(port: str) -> None:
        fd = os.open(shared_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AssertionError("the host sees the flock a box holds on a shared file") from None
        finally:
            os.close(fd)

    assert_no_channel(box, box2, "lock", (f"--dir=/shared={shared_file.parent}",),
                      during=host_sees_no_lock, control_opts=("--syscalls=+flock,+fcntl",))


def test_keyrings(box: InitBox, box2: InitBox) -> None:
    """A named session keyring that everyone may use, holding the token: the other box joins
    it by name and reads the key."""
    assert_no_channel(box, box2, "keyring",
                      control_opts=("--syscalls=+keyctl,+add_key,+request_key",))


KEYRING = (PROGRAMS / "keyring.py").read_text()
KEYRING_ALLOWED = ("--syscalls=+keyctl,+add_key",)


@pytest.mark.parametrize("ring", ["user", "user-session", "persistent", "session"])
def test_keyrings_do_not_carry_over_to_the_next_run(box: InitBox, ring: str) -> None:
    """A box's uid is the same on every run, and so are its keyrings: with keyctl and add_key
    allowed, one run stores a secret (and reads it back), the next run of the box (maybe
    another user's submission, with the same syscalls) must not find it."""
    secret = "cellbox-keyring-" + os.urandom(8).hex()
    try:
        put = run_attack(box, KEYRING, "put", ring, secret, opts=KEYRING_ALLOWED)
        assert f"stored\nSAW {secret}" in put, put
        later = run_attack(box, KEYRING, "get", ring, opts=KEYRING_ALLOWED)
    finally:
        box.run(PY, "-c", KEYRING, "clear", ring, opts=KEYRING_ALLOWED)  # leave no key behind
    assert secret not in later, later
