"""The test session's configuration, the cellbox command line, and boxes initialised for a
test (cleaned up after it)."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cellbox.cgroup import detect
from cellbox.chaos import uid_processes

NUM_BOXES = 200
SLOTS = 25  # of NUM_BOXES uids each, in 60000-64999


def _session_slot() -> int:
    """A slot that no other test session on this machine holds: a lock held for the life of
    this process, on a slot whose uids no process has (root's; without root, where no box is
    made, any slot does)."""
    if os.geteuid() != 0:
        return os.getpid() % SLOTS
    for slot in range(SLOTS):
        fd = os.open(f"/run/cellbox-test-slot-{slot}", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if not uid_processes(60000 + NUM_BOXES * slot, NUM_BOXES):
            return slot  # the fd stays open, and the lock held, until the session ends
        os.close(fd)
    raise RuntimeError(f"all {SLOTS} test session slots are taken (/run/cellbox-test-slot-*)")


# Per session, like CG_ROOT: concurrent test runs get disjoint box uids, all in 60000-64999,
# below nobody's 65534 (cellbox --check-config and doctor refuse a range with a real user).
FIRST_UID = 60000 + NUM_BOXES * _session_slot()
CG_ROOT = f"cellbox/test-{os.getpid()}"  # per session: parallel runs never meet
PROGRAMS = Path(__file__).parent.parent / "programs"
PY = "/usr/bin/python3"
# A run that lasts until it is killed, in four processes (and their sleeps, 8 at most), that
# leave the CPU to the rest (an emulated VM has little): for tests that need a run in progress.
BUSY = "for i in 1 2 3; do (while :; do sleep 1; done) & done; while :; do sleep 1; done"
# A run that lasts until the test puts a file named "go" in the box (-p2 or more).
UNTIL_GO = "while [ ! -e go ]; do sleep 0.05; done"


def box_uid(box_id: int) -> int:
    return FIRST_UID + box_id


def box_uid_processes() -> list[str]:
    return uid_processes(FIRST_UID, NUM_BOXES)


def box_procs(box_id: int) -> list[str]:
    return uid_processes(box_uid(box_id), 1)


def cellbox(*args: str, input: bytes | None = None, timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run the cellbox command line (as a new process, the way judges call it)."""
    # Without the COLUMNS=80 that pytest's environment carries: the tables would follow it.
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "cellbox", *args], input=input,
                          capture_output=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"cellbox {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr.decode()}")
    return proc


def start(*args: str) -> subprocess.Popen[bytes]:
    """The cellbox command line in the background."""
    return subprocess.Popen([sys.executable, "-m", "cellbox", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    """Until ``predicate`` holds; the timeout is generous (an emulated VM is slow), so that it
    only ends a test that would wait forever."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def boxes_json() -> dict[int, dict[str, object]]:
    proc = cellbox("boxes", "--json", check=True)
    return {int(b["box"]): b for b in json.loads(proc.stdout)}


def parse_meta(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in text.splitlines() if line)


@dataclass
class InitBox:
    """A box initialised through the CLI for one test; cleaned up after it."""

    id: int
    dir: Path  # <box_root>/<id>

    @property
    def work(self) -> Path:
        return self.dir / "box"

    @property
    def meta_dir(self) -> Path:
        """Where run() keeps its meta file: apart from the box and the program's stdout."""
        return self.dir.parent.parent

    def cellbox(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return cellbox(*args, timeout=timeout)

    def run(self, *argv: str, opts: tuple[str, ...] = (), timeout: float = 60
            ) -> tuple[subprocess.CompletedProcess[bytes], dict[str, str]]:
        """--run with a meta file; returns the process and the parsed meta file."""
        meta = self.meta_dir / f"meta-{self.id}"
        proc = self.cellbox("-b", str(self.id), f"--meta={meta}", *opts, "--run", "--", *argv,
                            timeout=timeout)
        text = meta.read_text() if meta.exists() else ""
        meta.unlink(missing_ok=True)
        return proc, parse_meta(text)

    def put(self, name: str, data: bytes | str, mode: int = 0o644) -> Path:
        p = self.work / name
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        p.chmod(mode)
        return p


def run_capped(box: InitBox, *argv: str, opts: tuple[str, ...] = (), wall: int = 20,
               timeout: float = 60) -> tuple[subprocess.CompletedProcess[bytes], dict[str, str]]:
    """A run under a wall-clock limit of ``wall`` seconds, so that no program of a limits or
    accounting test can last longer, whatever the sandbox does. Options given later win."""
    return box.run(*argv, opts=("-w", str(wall), *opts), timeout=timeout)


# Fixtures take boxes 1..139 in turn (each is cleaned up after its test); 140..199 are for
# tests that name a fixed box, so that no counter or state of theirs is shared.
_ids = itertools.cycle(range(1, 140))


def init_next_box(*opts: str) -> InitBox:
    """--init the next free box id (``opts``: extra --init options); the caller cleans up."""
    while True:  # skip boxes that a concurrent test run holds
        box_id = next(_ids)
        proc = cellbox("-b", str(box_id), *opts, "--init")
        if proc.returncode == 0:
            return InitBox(box_id, Path(proc.stdout.decode().strip()))
        if b"busy" not in proc.stderr and b"already initialised" not in proc.stderr:
            raise AssertionError(f"--init failed: {proc.stderr.decode()}")


@contextmanager
def new_box(*opts: str, box_id: int | None = None) -> Iterator[InitBox]:
    """A box (the next free one, or ``box_id``) initialised with ``opts``, always cleaned up
    after; the test's own box, or a second one beside it."""
    if box_id is None:
        b = init_next_box(*opts)
    else:
        proc = cellbox("-b", str(box_id), *opts, "--init")
        assert proc.returncode == 0, proc.stderr
        b = InitBox(box_id, Path(proc.stdout.decode().strip()))
    try:
        yield b
    finally:
        cellbox("-b", str(b.id), "--cleanup", check=True)


def session_cgroup(controller: str, name: str) -> Path:
    """A new cgroup ``name`` with ``controller`` (e.g. pids, memory), in the session's cgroup
    directory, on whichever cgroup version this machine has; the caller removes it."""
    backend = detect(CG_ROOT)
    if backend.version == 1:
        base = Path(backend.mounts[controller], backend.root)  # type: ignore[attr-defined]
        base.mkdir(parents=True, exist_ok=True)
    else:  # v2: the directories down to the base, with the controller enabled on the way
        mount = Path(backend.mount)  # type: ignore[attr-defined]
        base = Path(backend.base_dirs()[0])
        if not base.exists():  # let cellbox make it, taking a delegated cgroup if it must
            backend.box(NUM_BOXES - 1).remove()
        path = mount
        for part in (*base.relative_to(mount).parts, None):
            control = path / "cgroup.subtree_control"
            if controller not in control.read_text().split():
                control.write_text(f"+{controller}")
            if part is not None:
                path = path / part
                path.mkdir(exist_ok=True)
    cg = base / name
    cg.mkdir()
    return cg
