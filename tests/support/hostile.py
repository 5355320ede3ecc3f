"""Canaries and helpers for the attack suite.

Every attack is judged by its effect on the host, not by what the hostile program says:
- ``HostCanary``: a file (root-owned, mode 0600 unless a test needs otherwise) holding a secret.
  The secret must never show up in a run's output, and the file's stat and content must not
  change. Canaries live in a fresh directory under the host's /tmp, removed after the test.
- ``canary_process``: a host process started by the test (optionally as a box's uid, so that
  only the sandbox, not plain uid checks, stands between it and the box), ended by its pid.
- ``listeners``: TCP and UDP sockets on 127.0.0.1 and ::1 plus an abstract unix socket, polled
  (no threads: the library refuses to run from a multi-threaded process) for anything received.

Hostile programs only ever touch canaries made here. Network traffic goes to loopback only.
The fixtures are registered by tests/security/conftest.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.boxes import PY, InitBox, session_cgroup
from tests.support.proof import STARTED, output, run_checked

HOSTILE_PROGRAMS = Path(__file__).parent.parent / "security" / "programs"


def new_secret() -> str:
    return f"cellbox-secret-{uuid.uuid4().hex}"


# -- canary files --------------------------------------------------------------------------

@dataclass
class HostCanary:
    path: Path
    secret: str
    before: tuple = field(default=(), repr=False)

    def snapshot(self) -> tuple:
        st = os.lstat(self.path)
        return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
                st.st_mtime_ns, st.st_ctime_ns, self.path.read_bytes())

    def assert_untouched(self, *outputs: bytes) -> None:
        """Same inode, owner, mode, link count, times and content; secret in no output."""
        assert self.path.exists(), f"the canary {self.path} was deleted"
        assert self.snapshot() == self.before, f"the canary {self.path} was changed"
        for out in outputs:
            assert self.secret.encode() not in out, f"the secret of {self.path} leaked"


def make_canary(where: Path, name: str = "canary", mode: int = 0o600,
                owner: tuple[int, int] = (0, 0)) -> HostCanary:
    secret = new_secret()
    path = where / name
    path.write_text(secret + "\n")
    os.chown(path, *owner)
    path.chmod(mode)
    c = HostCanary(path, secret)
    c.before = c.snapshot()
    return c


@pytest.fixture
def canary_dir() -> Iterator[Path]:
    """A fresh directory in the host's /tmp (mode 0755, so it can also be bound into a box)."""
    d = Path(tempfile.mkdtemp(prefix="cellbox-canary-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def canary(canary_dir: Path) -> HostCanary:
    """A root-owned 0600 file with a secret, in the host's /tmp."""
    return make_canary(canary_dir)


def dir_listing(d: Path) -> dict[str, tuple]:
    """Name -> (mode, uid, gid, size, mtime) for everything under ``d``: to compare."""
    out = {}
    for p in sorted(d.rglob("*")):
        st = os.lstat(p)
        out[str(p.relative_to(d))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                      st.st_mtime_ns)
    st = os.lstat(d)
    out["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


@pytest.fixture
def canary_cgroup() -> Iterator[Path]:
    """A host pids cgroup made for the test (in the session's cgroup directory, on either
    cgroup version), its files world-writable, pids.max 7."""
    cg = session_cgroup("pids", f"canary-{uuid.uuid4().hex[:12]}")
    (cg / "pids.max").write_text("7")
    for f in ("cgroup.procs", "tasks", "cgroup.threads", "pids.max"):
        if (cg / f).exists():
            (cg / f).chmod(0o666)
    yield cg
    cg.rmdir()


# -- canary processes ----------------------------------------------------------------------

@dataclass
class CanaryProcess:
    proc: subprocess.Popen[bytes]
    secret: str  # in its environment

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def traced_by(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
        return 0


@pytest.fixture
def canary_process(canary_dir: Path) -> Iterator[Callable[..., CanaryProcess]]:
    """Factory: start(uid=None) -> a host `sleep` (as ``uid`` if given), with a secret in its
    environment and its working directory in ``canary_dir``. Ended by pid after the test."""
    started: list[CanaryProcess] = []

    def start(uid: int | None = None) -> CanaryProcess:
        secret = new_secret()
        ids = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
        proc = subprocess.Popen(["sleep", "600"], cwd=canary_dir,
                                env={"CELLBOX_CANARY_SECRET": secret}, **ids)
        started.append(CanaryProcess(proc, secret))
        return started[-1]

    yield start
    for c in started:
        if c.alive():
            os.kill(c.pid, signal.SIGKILL)
        c.proc.wait()


# -- loopback listeners --------------------------------------------------------------------

@dataclass
class Listeners:
    """Loopback listeners. ``port(kind)``: where each listens; ``received()``: every
    connection accepted or datagram read so far, as (kind, detail)."""

    socks: dict[str, socket.socket]
    abstract_name: str

    def port(self, kind: str) -> int:
        return self.socks[kind].getsockname()[1]

    def received(self) -> list[tuple[str, str]]:
        got = []
        for kind, s in self.socks.items():
            while True:
                try:
                    if s.type == socket.SOCK_STREAM:
                        conn, peer = s.accept()
                        data = b""
                        conn.settimeout(0.2)
                        try:
                            data = conn.recv(4096)
                        except OSError:
                            pass
                        conn.close()
                        got.append((kind, f"connection from {peer!r}: {data!r}"))
                    else:
                        data, peer = s.recvfrom(65536)
                        got.append((kind, f"datagram from {peer!r}: {data!r}"))
                except (BlockingIOError, InterruptedError):
                    break
        return got


@pytest.fixture
def listeners() -> Iterator[Listeners]:
    socks: dict[str, socket.socket] = {}
    for kind, family, addr, typ in (("tcp4", socket.AF_INET, "127.0.0.1", socket.SOCK_STREAM),
                                    ("tcp6", socket.AF_INET6, "::1", socket.SOCK_STREAM),
                                    ("udp4", socket.AF_INET, "127.0.0.1", socket.SOCK_DGRAM),
                                    ("udp6", socket.AF_INET6, "::1", socket.SOCK_DGRAM)):
        s = socket.socket(family, typ)
        s.bind((addr, 0))
        if typ == socket.SOCK_STREAM:
            s.listen(16)
        s.setblocking(False)
        socks[kind] = s
    name = f"cellbox-canary-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(16)
    s.setblocking(False)
    socks["abstract"] = s
    yield Listeners(socks, name)
    for s in socks.values():
        s.close()


# -- two boxes at once ----------------------------------------------------------------------

CHANNEL = HOSTILE_PROGRAMS / "channel.py"  # prints the start marker, as hostile C programs
# The tail of a hostile program that defines ``attacks``, a list of (name, callable): it tries
# each one and prints "NAME DONE", or NAME and the error that stopped it.
RUN_ATTACKS = """
for name, attack in attacks:
    try:
        attack()
        print(name, "DONE")
    except OSError as e:
        print(name, e)
"""


def listen_and_talk(listener: InitBox, talker: InitBox, kind: str, opts: tuple[str, ...] = (),
                    during: Callable[[str], None] = lambda port: None) -> tuple[bytes, bytes]:
    """Run the listener in one box and, while it waits, the talker in the other. ``during``
    runs on the host (given the port) while the listener holds its channel. Returns both
    outputs."""
    port = str(random.randrange(20000, 60000))
    for b in (listener, talker):
        b.put("channel.py", CHANNEL.read_bytes())
    lst = subprocess.Popen([sys.executable, "-m", "cellbox", "-b", str(listener.id), "-p",
                            *opts, "--run", "--", PY, "channel.py", "listen", kind, port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # generous: the emulated VM starts it slowly
        while not (listener.work / "ready").exists():
            assert lst.poll() is None and time.monotonic() < deadline, "listener never ready"
            time.sleep(0.02)
        during(port)
        said, _ = run_checked(talker, PY, "channel.py", "talk", kind, port, opts=("-p", *opts))
        (listener.work / "done").touch()
        heard, _ = lst.communicate(timeout=120)
    finally:
        if lst.poll() is None:
            lst.kill()
            lst.wait()
    assert STARTED in heard, f"the listener never started in its box: {heard!r}"
    return heard.replace(STARTED, b""), output(said)


def assert_no_channel(a: InitBox, b: InitBox, kind: str, opts: tuple[str, ...] = (),
                      during: Callable[[str], None] = lambda port: None,
                      control_opts: tuple[str, ...] = ()) -> None:
    """``control_opts``: what re-opens the channel inside one box for the positive control,
    where the policy closes it for every box (e.g. ``--syscalls=+keyctl``)."""
    heard, said = listen_and_talk(a, b, kind, opts, during)
    assert b"GOT" not in heard, f"{kind}: the listener box received: {heard!r}"
    assert b"SAW" not in said, f"{kind}: the talker box saw the listener: {said!r}"
    assert b"Traceback" not in heard + said, (heard, said)
    control, _ = run_checked(a, PY, "channel.py", "both", kind,
                             str(random.randrange(20000, 60000)), opts=("-p", *opts, *control_opts))
    assert b"GOT" in control.stdout or b"SAW" in control.stdout, (
        f"{kind}: the channel does not even work inside one box: {output(control)!r}")
