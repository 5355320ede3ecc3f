"""Shared fixtures. Every test runs cellbox for real (root, namespaces, cgroups, mounts).

The suite uses its own configuration (box_root and lock_root in a temporary directory, cgroups
under cellbox/test-PID: <controller>/cellbox/test-PID on cgroup v1, <cgroup2 mount>/cellbox/
test-PID on v2), so it never touches boxes in real use, and it checks after every test that
nothing was left behind: no process with a box uid, no mount, no box cgroup.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cellbox.cgroup import detect
from cellbox.chaos import uid_processes

NUM_BOXES = 200
# Per session, like CG_ROOT: concurrent test runs get disjoint box uids, all in 60000-64999,
# below nobody's 65534 (cellbox --check-config and doctor refuse a range with a real user).
FIRST_UID = 60000 + NUM_BOXES * (os.getpid() % 25)
CG_ROOT = f"cellbox/test-{os.getpid()}"  # per session: parallel runs never meet
PROGRAMS = Path(__file__).parent / "programs"

if os.geteuid() != 0:
    pytest.skip("cellbox's tests need root: they create namespaces, mounts and cgroups",
                allow_module_level=True)


@pytest.fixture(scope="session", autouse=True)
def test_config() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="cellbox-test-"))
    cfg = top / "cellbox.toml"
    cfg.write_text(
        f'box_root = "{top}/boxes"\nlock_root = "{top}/locks"\ncg_root = "{CG_ROOT}"\n'
        f"first_uid = {FIRST_UID}\nfirst_gid = {FIRST_UID}\nnum_boxes = {NUM_BOXES}\n"
        "daemon_autostart = false\n"  # tests start the daemons they use, at their own sockets
    )
    old = os.environ.get("CELLBOX_CONFIG")
    os.environ["CELLBOX_CONFIG"] = str(cfg)
    # No command of the suite reaches (or starts, as root's commands may) the machine's keeper
    # daemon; the daemon tests undo this for their own daemons.
    os.environ["CELLBOX_NO_DAEMON"] = "1"
    yield cfg
    if old is None:
        os.environ.pop("CELLBOX_CONFIG", None)
    else:
        os.environ["CELLBOX_CONFIG"] = old
    for d in _cgroup_dirs():
        for sub in sorted(Path(d).glob("box-*")):
            sub.rmdir()
    detect(CG_ROOT).remove_root()
    shutil.rmtree(top, ignore_errors=True)


def _cgroup_dirs() -> list[str]:
    """The session's cgroup directories that exist, on whichever backend this machine has."""
    return [d for d in detect(CG_ROOT).base_dirs() if os.path.isdir(d)]


def box_uid_processes() -> list[str]:
    return uid_processes(FIRST_UID, NUM_BOXES)


@pytest.fixture(autouse=True)
def no_leftovers(test_config: Path, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "long_lived_boxes" not in request.fixturenames:
        check_no_leftovers(test_config)


@pytest.fixture(scope="module")
def long_lived_boxes(test_config: Path) -> Iterator[None]:
    """For fixtures that hold boxes across a module's tests (a server's warm boxes): the
    leftovers are checked once, at the module's end, after those fixtures closed them."""
    yield
    check_no_leftovers(test_config)


def check_no_leftovers(test_config: Path) -> None:
    top = str(test_config.parent)
    procs = box_uid_processes()
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if top in line.split()[1]]
    cgroups = [str(p) for d in _cgroup_dirs() for p in Path(d).glob("box-*")]
    assert not procs, f"processes with a box uid outlived the test: {procs}"
    assert not mounts, f"mounts left behind: {mounts}"
    assert not cgroups, f"box cgroups left behind: {cgroups}"


def user_python(uid: int) -> tuple[str, str]:
    """An interpreter ``uid`` can run, with cellbox and its dependencies, and the PYTHONPATH
    it needs: this one, or (when it lives where the uid cannot reach, e.g. pyenv under /root)
    the system's python3 of the same version with this environment's site-packages."""
    repo = str(Path(__file__).resolve().parent.parent)
    site = sysconfig.get_paths()["purelib"]
    tried = []
    for python, path in ((sys.executable, repo), ("/usr/bin/python3", f"{repo}:{site}")):
        probe = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python,
             "-c", "import sys, cellbox.box, pyseccomp; print(sys.version_info[:2])"],
            env={"PYTHONPATH": path}, capture_output=True, cwd="/")
        if probe.returncode == 0 and probe.stdout.decode().strip() == str(sys.version_info[:2]):
            return python, path
        tried.append(f"{python}: {probe.stderr.decode().strip()[-200:]}")
    pytest.fail(f"uid {uid} cannot run a Python with cellbox and its dependencies "
                f"(make the interpreter and the checkout world-readable): {tried}")


def cellbox(*args: str, input: bytes | None = None, timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run the cellbox command line (as a new process, the way judges call it)."""
    proc = subprocess.run([sys.executable, "-m", "cellbox", *args], input=input,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"cellbox {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr.decode()}")
    return proc


def parse_meta(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in text.splitlines() if line)


# Fixtures take boxes 1..139 in turn (each is cleaned up after its test); 140..199 are for
# tests that name a fixed box, so that no counter or state of theirs is shared.
_ids = itertools.cycle(range(1, 140))


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


def init_next_box(*opts: str) -> InitBox:
    """--init the next free box id (``opts``: extra --init options); the caller cleans up."""
    while True:  # skip boxes that a concurrent test run holds
        box_id = next(_ids)
        proc = cellbox("-b", str(box_id), *opts, "--init")
        if proc.returncode == 0:
            return InitBox(box_id, Path(proc.stdout.decode().strip()))
        if b"busy" not in proc.stderr and b"already initialised" not in proc.stderr:
            raise AssertionError(f"--init failed: {proc.stderr.decode()}")


@pytest.fixture
def box() -> Iterator[InitBox]:
    b = init_next_box()
    yield b
    cellbox("-b", str(b.id), "--cleanup", check=True)


@pytest.fixture(scope="session")
def c_program(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Compile tests/programs/NAME.c (or WHERE/NAME.c) once per session; returns a function
    (NAME, WHERE) -> path. Names are unique across directories."""
    out = tmp_path_factory.mktemp("bin")
    cache: dict[str, Path] = {}

    def build(name: str, where: Path = PROGRAMS) -> Path:
        if name not in cache:
            exe = out / name
            subprocess.run(["gcc", "-O1", "-pthread", "-o", str(exe), str(where / f"{name}.c"),
                            "-lresolv"], check=True)
            cache[name] = exe
        return cache[name]

    return build


@pytest.fixture
def progs(box: InitBox, c_program) -> InitBox:  # noqa: ANN001
    """A box with the test programs (tests/programs/*.c) in its working directory."""
    for name in ("burn", "alloc", "recurse", "forker", "openfiles"):
        shutil.copy(c_program(name), box.work / name)
        (box.work / name).chmod(0o755)
    return box
