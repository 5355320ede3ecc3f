"""Ordinary users of root's keeper daemon, for the tests: real users and a group made for a
module (useradd, groupadd) and removed after it (the ``site`` fixture), and root's daemon with
a config of its own in a directory every user may traverse (boxes 180..199 of the suite's box
uids and cgroups)."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cellbox.cli import client
from tests.support.boxes import CG_ROOT, FIRST_UID, NUM_BOXES
from tests.support.rootless import user_python

ROOT = Path(__file__).parent.parent.parent
TAG = f"{os.getpid() % 100000}"
GROUP = f"cbxg{TAG}"  # the allowed group
BOX_IDS = itertools.cycle(range(180, 200))


@dataclass
class User:
    name: str
    uid: int
    gid: int
    home: Path  # theirs, mode 0700: meta files and private files
    python: str
    pythonpath: str
    socket: Path

    def command(self, *args: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                self.python, "-m", "cellbox", *args]

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "PYTHONPATH": self.pythonpath, "HOME": str(self.home),
                client.SOCKET_ENV: str(self.socket), **extra}

    def cellbox(self, *args: str, timeout: float = 60, **env: str
                ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(*args), env=self.env(**env), cwd=self.home,
                              capture_output=True, timeout=timeout)

    def sh(self, script: str) -> subprocess.CompletedProcess[bytes]:
        """A shell command as this user (their own file access, no cellbox)."""
        return subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                               "--init-groups", "/bin/sh", "-c", script], capture_output=True,
                              cwd=self.home, timeout=30)


@dataclass
class Site:
    top: Path  # mode 0755: the daemon's config, socket, boxes and locks, the users' homes
    config: Path
    users: dict[str, User]  # member (of GROUP), named (in daemon_users), outsider
    secret: Path  # root's, mode 0700, with sub/file in it (0755, 0644)
    group_dir: Path  # root:GROUP, mode 0750, with pub/data in it (0755, 0644)


def next_box_id() -> int:
    return next(BOX_IDS)


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def write_config(path: Path, top: Path, **extra: str) -> None:
    lines = [f'box_root = "{top}/boxes"', f'lock_root = "{top}/locks"', f'cg_root = "{CG_ROOT}"',
             f"first_uid = {FIRST_UID}", f"first_gid = {FIRST_UID}", f"num_boxes = {NUM_BOXES}",
             f'daemon_groups = ["{GROUP}"]', f'daemon_users = ["cbxn{TAG}"]',
             "daemon_autostart = false", *(f"{k} = {v}" for k, v in extra.items())]
    path.write_text("\n".join(lines) + "\n")


def start_daemon(config: Path, socket: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != client.SOCKET_ENV}
    env["CELLBOX_CONFIG"] = str(config)
    proc = subprocess.Popen([sys.executable, "-m", "cellbox", "keeperd", "--socket", str(socket)],
                            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"listening on" in line, line
    return proc


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    top = Path(tempfile.mkdtemp(prefix="cellbox-users-"))
    top.chmod(0o755)
    names = {"member": f"cbxm{TAG}", "named": f"cbxn{TAG}", "outsider": f"cbxo{TAG}"}
    made: list[str] = []
    try:
        _run("groupadd", GROUP)
        for role, name in names.items():
            groups = ["-G", GROUP] if role == "member" else []
            _run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-N",
                 "-g", "nogroup", *groups, name)
            made.append(name)
        python, path = user_python(pwd.getpwnam(names["member"]).pw_uid)
        users = {}
        for role, name in names.items():
            pw = pwd.getpwnam(name)
            home = top / name
            home.mkdir(mode=0o700)
            os.chown(home, pw.pw_uid, pw.pw_gid)
            users[role] = User(name, pw.pw_uid, pw.pw_gid, home, python, path, top / "k.sock")
        secret = top / "secret"
        secret.mkdir(mode=0o700)
        (secret / "sub").mkdir(mode=0o755)  # open to all, but inside a directory of root's
        (secret / "sub" / "file").write_text("root's secret\n")
        group_dir = top / "group-only"
        group_dir.mkdir()
        os.chown(group_dir, 0, int(subprocess.check_output(["getent", "group", GROUP])
                                   .split(b":")[2]))
        group_dir.chmod(0o750)
        (group_dir / "pub").mkdir(mode=0o755)
        (group_dir / "pub" / "data").write_text("for the group\n")
        config = top / "cellbox.toml"
        write_config(config, top)
        daemon = start_daemon(config, top / "k.sock")
        try:
            yield Site(top, config, users, secret, group_dir)
        finally:
            stop_daemon(daemon)
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", GROUP], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
