"""The suite's fixtures, registered by tests/conftest.py.

System tests (every test not marked ``unit``) use the session's own configuration (box_root
and lock_root in a temporary directory, cgroups under cellbox/test-PID: <controller>/cellbox/
test-PID on cgroup v1, <cgroup2 mount>/cellbox/test-PID on v2), so they never touch boxes in
real use, and each is checked afterwards for leftovers: no process with a box uid, no mount,
no box cgroup. Tests of pure code (``unit``) get none of this and need no root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cellbox.cgroup import detect
from tests.support.boxes import (
    CG_ROOT,
    FIRST_UID,
    NUM_BOXES,
    PROGRAMS,
    InitBox,
    box_uid_processes,
    new_box,
)
from tests.support.hostile import HOSTILE_PROGRAMS
from tests.support.proof import compile_c
from tests.support.rootless import RL_UID, RootlessBox, rootless_box


@pytest.fixture(scope="session")
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


@pytest.fixture(autouse=True)
def system(request: pytest.FixtureRequest) -> Iterator[None]:
    """A system test runs in the session's configuration and leaves nothing behind."""
    if request.node.get_closest_marker("unit"):
        yield
        return
    test_config = request.getfixturevalue("test_config")
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


@pytest.fixture
def box(request: pytest.FixtureRequest) -> Iterator[InitBox]:
    """A box of root's; or, for a test marked ``in_both_modes``, one of the unprivileged
    uid's in its second run."""
    if getattr(request, "param", "root") == "rootless":
        with rootless_box(request.getfixturevalue("user_env")) as b:
            yield b
    else:
        with new_box() as b:
            yield b


@pytest.fixture
def host_dir(box: InitBox, tmp_path: Path) -> Iterator[Path]:
    """A fresh host directory (mode 0755) that the box's owner may bind into the box: under
    root's tmp_path for a box of root's, under the unprivileged uid's own directory for a
    rootless box (whose files it owns)."""
    if isinstance(box, RootlessBox):
        d = Path(tempfile.mkdtemp(dir=box.env.top))
        os.chown(d, RL_UID, RL_UID)
        d.chmod(0o755)
        yield d
        shutil.rmtree(d)
    else:
        tmp_path.chmod(0o755)
        yield tmp_path


@pytest.fixture
def box2() -> Iterator[InitBox]:
    """A second box, for attacks between two boxes."""
    with new_box() as b:
        yield b


@pytest.fixture(scope="session")
def c_program(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Compile tests/programs/NAME.c (or WHERE/NAME.c) once per session; returns a function
    (NAME, WHERE) -> path. Names are unique across directories. Hostile programs (those of
    tests/security/programs) print the start marker that proves they ran (support/proof)."""
    out = tmp_path_factory.mktemp("bin")
    cache: dict[str, Path] = {}

    def build(name: str, where: Path = PROGRAMS) -> Path:
        if name not in cache:
            cache[name] = compile_c(where / f"{name}.c", out / name,
                                    marked=where == HOSTILE_PROGRAMS)
        return cache[name]

    return build


@pytest.fixture(scope="session")
def sys_program(c_program: Callable[..., Path]) -> Callable[[str], Path]:
    """NAME -> the compiled tests/security/programs/NAME.c (on the host)."""
    return lambda name: c_program(name, HOSTILE_PROGRAMS)


@pytest.fixture
def progs(box: InitBox, c_program: Callable[..., Path]) -> InitBox:
    """A box with the test programs (tests/programs/*.c) in its working directory."""
    for name in ("burn", "alloc", "recurse", "forker", "openfiles"):
        shutil.copy(c_program(name), box.work / name)
        (box.work / name).chmod(0o755)
    return box
