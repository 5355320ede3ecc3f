"""Rootless mode for the tests: an unprivileged numeric uid (``setpriv``; no /etc/passwd
entry needed) that runs the cellbox command line with a configuration of its own: storage and
locks in a directory that uid owns, the suite's box uids, boxes 260..279.

``in_both_modes`` runs a test of the box fixture twice: with a box of root's and with a box
the unprivileged uid initialised, so that a check the root mode passes is seen to pass
rootless too.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.boxes import FIRST_UID, InitBox

RL_UID = 58000 + os.getpid() % 1000  # per session; no other user of the machine has it
REPO = Path(__file__).resolve().parent.parent.parent
ROOTLESS_IDS = itertools.cycle(range(260, 280))  # the rootless boxes


@dataclass
class UserEnv:
    """What the unprivileged uid runs cellbox with."""

    top: Path  # owned by RL_UID: config, boxes, locks, meta files
    python: str
    pythonpath: str
    cgroup: Path | None = None  # v2: the delegated cgroup its commands start in

    def command(self, *args: str) -> list[str]:
        cmd = ["setpriv", f"--reuid={RL_UID}", f"--regid={RL_UID}", "--clear-groups",
               self.python, "-m", "cellbox", *args]
        if self.cgroup is not None:  # start where a delegated service's processes are
            cmd = ["sh", "-c", 'echo $$ > "$0" && exec "$@"',
                   str(self.cgroup / "supervisor" / "cgroup.procs"), *cmd]
        return cmd

    def environ(self, config: Path | None = None) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "PYTHONPATH": self.pythonpath,
                "CELLBOX_CONFIG": str(config or self.top / "cellbox.toml"),
                "HOME": str(self.top)}  # where the user builds the box init if root has not

    def cellbox(self, *args: str, timeout: float = 60, config: Path | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(*args), env={**self.environ(config), **(env or {})},
                              capture_output=True, timeout=timeout, cwd="/")


def user_python(uid: int) -> tuple[str, str]:
    """An interpreter ``uid`` can run, with cellbox and its dependencies, and the PYTHONPATH
    it needs: this one, or (when it lives where the uid cannot reach, e.g. pyenv under /root)
    the system's python3 of the same version with this environment's site-packages."""
    site = sysconfig.get_paths()["purelib"]
    tried = []
    for python, path in ((sys.executable, str(REPO)), ("/usr/bin/python3", f"{REPO}:{site}")):
        probe = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python,
             "-c", "import sys, cellbox.box, pyseccomp; print(sys.version_info[:2])"],
            env={"PYTHONPATH": path}, capture_output=True, cwd="/")
        if probe.returncode == 0 and probe.stdout.decode().strip() == str(sys.version_info[:2]):
            return python, path
        tried.append(f"{python}: {probe.stderr.decode().strip()[-200:]}")
    pytest.fail(f"uid {uid} cannot run a Python with cellbox and its dependencies "
                f"(make the interpreter and the checkout world-readable): {tried}")


@pytest.fixture(scope="session")
def user_env() -> Iterator[UserEnv]:
    top = Path(tempfile.mkdtemp(prefix="cellbox-rootless-"))
    (top / "cellbox.toml").write_text(
        f'box_root = "{top}/boxes"\nlock_root = "{top}/locks"\nnum_boxes = 280\n'
        f"first_uid = {FIRST_UID}\nfirst_gid = {FIRST_UID}\n")
    os.chown(top, RL_UID, RL_UID)
    python, path = user_python(RL_UID)
    yield UserEnv(top, python, path)
    shutil.rmtree(top)


@dataclass
class RootlessBox(InitBox):
    """A box initialised by the unprivileged uid, used as InitBox is."""

    env: UserEnv

    @property
    def meta_dir(self) -> Path:
        return self.env.top

    def cellbox(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return self.env.cellbox(*args, timeout=timeout)

    def put(self, name: str, data: bytes | str, mode: int = 0o644) -> Path:
        p = super().put(name, data, mode)
        os.chown(p, RL_UID, RL_UID)
        return p


@contextmanager
def rootless_box(env: UserEnv) -> Iterator[RootlessBox]:
    box_id = next(ROOTLESS_IDS)
    proc = env.cellbox("-b", str(box_id), "--init")
    assert proc.returncode == 0, proc.stderr
    box = RootlessBox(box_id, Path(proc.stdout.decode().strip()), env)
    try:
        yield box
    finally:
        proc = env.cellbox("-b", str(box_id), "--cleanup")
        assert proc.returncode == 0, proc.stderr
        assert not box.dir.exists()

# Root mode, then rootless mode (marker rootless).
in_both_modes = pytest.mark.parametrize(
    "box", ["root", pytest.param("rootless", marks=pytest.mark.rootless)], indirect=True)
