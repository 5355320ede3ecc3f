"""Root's keeper daemon serving ordinary users, by isolate's rules for a setuid caller.

Real users and a group, made for the module (useradd, groupadd) and removed after it, call
cellbox through root's daemon as their own processes (``setpriv``): a member of the allowed
group, a user allowed by name, and one outside both. The daemon runs with a config of its own
in a directory every user may traverse (boxes 180..199 of the suite's box uids and cgroups).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox.cli import client
from tests.support.boxes import FIRST_UID, parse_meta
from tests.support.users import (  # noqa: F401 - the site fixture
    BOX_IDS,
    GROUP,
    ROOT,
    Site,
    User,
    next_box_id,
    site,
    start_daemon,
    stop_daemon,
    write_config,
)

pytestmark = pytest.mark.daemon


















def _init(user: User) -> tuple[int, Path]:
    while True:  # skip boxes a concurrent test run holds
        box_id = next(BOX_IDS)
        proc = user.cellbox("-b", str(box_id), "--init")
        if proc.returncode == 0:
            return box_id, Path(proc.stdout.decode().strip())
        assert b"busy" in proc.stderr or b"already initialised" in proc.stderr, proc.stderr


def _root_cellbox(site: Site, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Root's own command, through the same daemon."""
    env = dict(os.environ, CELLBOX_CONFIG=str(site.config))
    env[client.SOCKET_ENV] = str(site.top / "k.sock")
    env.pop(client.NO_DAEMON_ENV)
    return subprocess.run([sys.executable, "-m", "cellbox", *args], env=env,
                          capture_output=True, timeout=60)


@pytest.fixture
def member_box(site: Site) -> Iterator[tuple[User, int, Path]]:
    user = site.users["member"]
    box_id, box_dir = _init(user)
    yield user, box_id, box_dir
    proc = _root_cellbox(site, "-b", str(box_id), "--cleanup")
    assert proc.returncode == 0, proc.stderr


def test_a_group_member_drives_a_root_mode_box_and_owns_its_files(
        member_box: tuple[User, int, Path]) -> None:
    user, box_id, box_dir = member_box
    assert box_dir.stat().st_uid == 0 and (box_dir / "box").stat().st_uid == user.uid
    # The user puts a file in and reads the program's output out, as with isolate.
    assert user.sh(f"echo input > {box_dir}/box/in.txt").returncode == 0
    proc = user.cellbox("-b", str(box_id), "--meta=meta", "--stdin=in.txt", "--stdout=out.txt",
                        "-p", "--run", "--", "/bin/sh", "-c", "cat; id -u")
    assert proc.returncode == 0, proc.stderr
    out = user.sh(f"cat {box_dir}/box/out.txt")
    # Root mode: the program ran as the box's uid, not in the user's namespace.
    assert out.stdout == f"input\n{FIRST_UID + box_id}\n".encode(), out
    meta = user.home / "meta"
    assert meta.stat().st_uid == user.uid
    assert parse_meta(meta.read_text())["cellbox-status"] == "OK"
    proc = user.cellbox("-b", str(box_id), "--cleanup")
    assert proc.returncode == 0, proc.stderr
    assert not box_dir.exists()
    assert user.cellbox("-b", str(box_id), "--init").returncode == 0  # for the fixture


def test_a_user_named_in_the_config_is_served(site: Site) -> None:
    user = site.users["named"]
    box_id, box_dir = _init(user)
    assert (box_dir / "box").stat().st_uid == user.uid
    proc = user.cellbox("-b", str(box_id), "--cleanup")
    assert proc.returncode == 0, proc.stderr


def test_a_user_outside_the_allowed_set_is_refused_not_sent_to_rootless_mode(site: Site) -> None:
    user = site.users["outsider"]
    box_id = next(BOX_IDS)
    proc = user.cellbox("-b", str(box_id), "--init", XDG_RUNTIME_DIR=str(user.home))
    assert proc.returncode == 2
    assert f"user {user.name} (uid {user.uid}) may not use root's cellbox daemon".encode() \
        in proc.stderr and GROUP.encode() in proc.stderr, proc.stderr
    assert not (site.top / "boxes" / str(box_id)).exists()
    assert not (user.home / "cellbox").exists()  # no rootless box either


def test_only_the_owner_or_root_may_run_or_clean_up_a_box(
        site: Site, member_box: tuple[User, int, Path]) -> None:
    _, box_id, box_dir = member_box
    other = site.users["named"]
    for command in (("--run", "--", "/bin/true"), ("--cleanup",)):
        proc = other.cellbox("-b", str(box_id), *command)
        assert proc.returncode == 2, proc.stderr
        assert b"belongs to uid" in proc.stderr and b"only its owner or root" in proc.stderr
    assert (box_dir / "box").is_dir()
    proc = _root_cellbox(site, "-b", str(box_id), "--run", "--", "/bin/true")
    assert proc.returncode == 0, proc.stderr


def test_dir_rules_bind_only_what_the_caller_may_reach(
        site: Site, member_box: tuple[User, int, Path]) -> None:
    user, box_id, _ = member_box
    proc = user.cellbox("-b", str(box_id), f"--dir=/s={site.secret}/sub", "--run", "--",
                        "/bin/cat", "/s/file")
    assert proc.returncode == 2 and b"you may not reach" in proc.stderr, proc.stderr
    assert b"secret" not in proc.stdout
    # ... by the supplementary groups too: the member reaches the group's directory, another
    # allowed user does not.
    proc = user.cellbox("-b", str(box_id), f"--dir=/g={site.group_dir}/pub", "--run", "--",
                        "/bin/cat", "/g/data")
    assert proc.returncode == 0 and proc.stdout == b"for the group\n", proc.stderr
    other = site.users["named"]
    other_box, _ = _init(other)
    try:
        proc = other.cellbox("-b", str(other_box), f"--dir=/g={site.group_dir}/pub", "--run",
                             "--", "/bin/cat", "/g/data")
        assert proc.returncode == 2 and b"you may not reach" in proc.stderr, proc.stderr
    finally:
        assert other.cellbox("-b", str(other_box), "--cleanup").returncode == 0


# Swaps two paths (RENAME_EXCHANGE) as fast as it can, as their owner.
SWAPPER = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b = (p.encode() for p in sys.argv[1:3])
print("swapping", flush=True)
while True:
    libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
"""


def test_a_dir_rule_source_swapped_for_a_link_binds_nothing_of_roots(
        site: Site, member_box: tuple[User, int, Path]) -> None:
    """The user swaps their own directory and a link to a directory of root's, over and over,
    while runs bind the path: between the daemon's check (as the user) and the box init's
    mount, the path changes under it. No run may ever see root's file; some see the user's
    (bound) and some are refused (checked or opened as the user while it was the link)."""
    user, box_id, _ = member_box
    race = user.home / "race"
    made = user.sh(f"mkdir -p {race}/a && echo mine > {race}/a/file "
                   f"&& ln -s {site.secret}/sub {race}/b")
    assert made.returncode == 0, made.stderr
    swapper = subprocess.Popen(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
                                "--init-groups", user.python, "-c", SWAPPER, f"{race}/a",
                                f"{race}/b"], stdout=subprocess.PIPE, env=user.env())
    codes = []
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == b"swapping\n"
        for _ in range(40):
            proc = user.cellbox("-b", str(box_id), f"--dir=/s={race}/a", "--run", "--",
                                "/bin/cat", "/s/file")
            assert b"secret" not in proc.stdout, "a run bound root's directory"
            assert proc.returncode in (0, 2), proc.stderr
            assert proc.returncode == 2 or proc.stdout == b"mine\n", proc
            codes.append(proc.returncode)
    finally:
        swapper.kill()
        swapper.wait()
    assert 0 in codes and 2 in codes, f"the race was not exercised on both sides: {codes}"


def test_the_meta_file_and_a_policy_file_are_opened_as_the_caller(
        site: Site, member_box: tuple[User, int, Path]) -> None:
    user, box_id, _ = member_box
    proc = user.cellbox("-b", str(box_id), f"--meta={site.secret}/meta", "--run", "--",
                        "/bin/true")
    assert proc.returncode == 2 and b"Permission denied" in proc.stderr, proc.stderr
    assert not (site.secret / "meta").exists()
    # A root-owned file the user may read but not write, in their own directory.
    theirs = user.home / "roots"
    theirs.write_text("root's\n")
    proc = user.cellbox("-b", str(box_id), f"--meta={theirs}", "--run", "--", "/bin/true")
    assert proc.returncode == 2 and theirs.read_text() == "root's\n", proc.stderr
    (site.secret / "policy.toml").write_text("[deny]\n")
    proc = user.cellbox("-b", str(box_id), f"--seccomp-policy={site.secret}/policy.toml",
                        "--run", "--", "/bin/true")
    assert proc.returncode == 2 and b"Permission denied" in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", ["--init", "--cleanup"])
def test_as_uid_is_for_root_only(site: Site, command: str) -> None:
    user = site.users["member"]
    proc = user.cellbox("-b", str(next(BOX_IDS)), "--as-uid=0", "--as-gid=0", command)
    assert proc.returncode == 2 and b"--as-uid and --as-gid are for root only" in proc.stderr


def test_the_daemon_uses_its_own_config_whatever_the_user_names(site: Site) -> None:
    user = site.users["member"]
    theirs = user.home / "mine.toml"
    write_config(theirs, user.home)
    theirs.write_text(theirs.read_text().replace(f"first_uid = {FIRST_UID}", "first_uid = 1"))
    box_id = next(BOX_IDS)
    proc = user.cellbox("-b", str(box_id), "--cleanup", CELLBOX_CONFIG=str(theirs))
    assert proc.returncode == 0 and not (user.home / "locks").exists(), proc.stderr
    proc = user.cellbox("-b", str(box_id), "--init", CELLBOX_CONFIG=str(theirs))
    assert proc.returncode == 0, proc.stderr
    try:
        assert proc.stdout.decode().strip() == str(site.top / "boxes" / str(box_id))
        assert not (user.home / "boxes").exists()
    finally:
        assert user.cellbox("-b", str(box_id), "--cleanup").returncode == 0


def test_users_are_served_isolates_grammar_only(site: Site) -> None:
    """A request sent by hand for another subcommand (the client sends none) is refused."""
    user = site.users["member"]
    by_hand = ("import sys, socket; from cellbox.cli import client; "
               "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
               "s.connect(client.socket_path()); "
               "s.sendmsg([client.request(['boxes', '--json'])], [(socket.SOL_SOCKET, "
               "socket.SCM_RIGHTS, b''.join(fd.to_bytes(4, sys.byteorder) "
               "for fd in (0, 1, 2, 0)))]); print(s.recv(4096).decode())")
    proc = subprocess.run(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
                           "--init-groups", user.python, "-c", by_hand], env=user.env(),
                          capture_output=True, timeout=30, cwd=user.home)
    assert proc.stdout.startswith(b"refused this daemon serves other users isolate's grammar"), \
        proc


def test_restricted_init_leaves_init_to_root(site: Site) -> None:
    config = site.top / "restricted.toml"
    write_config(config, site.top, restricted_init="true")
    socket = site.top / "restricted.sock"
    daemon = start_daemon(config, socket)
    user = site.users["member"]
    user = User(**{**user.__dict__, "socket": socket})
    try:
        box_id = next(BOX_IDS)
        proc = user.cellbox("-b", str(box_id), "--init")
        assert proc.returncode == 2 and b"only root may --init" in proc.stderr, proc.stderr
        env = dict(os.environ, CELLBOX_CONFIG=str(config))
        env[client.SOCKET_ENV] = str(socket)
        env.pop(client.NO_DAEMON_ENV)
        subprocess.run([sys.executable, "-m", "cellbox", "-b", str(box_id),
                        f"--as-uid={user.uid}", f"--as-gid={user.gid}", "--init"], env=env,
                       check=True, capture_output=True, timeout=60)
        proc = user.cellbox("-b", str(box_id), "--run", "--", "/bin/true")
        assert proc.returncode == 0, proc.stderr
        assert user.cellbox("-b", str(box_id), "--cleanup").returncode == 0
    finally:
        stop_daemon(daemon)


def test_the_socket_is_open_to_all_and_the_daemon_decides(site: Site) -> None:
    assert stat.S_IMODE((site.top / "k.sock").stat().st_mode) == 0o666


def test_the_native_client_serves_users_too(site: Site) -> None:
    native = ROOT / ".venv" / "bin" / "cellbox"
    assert native.read_bytes()[:4] == b"\x7fELF", \
        f"{native} is not the native client: run scripts/bootstrap.sh"
    user = site.users["member"]
    command = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups",
               str(native)]
    outputs = []
    box_id = next_box_id()
    for args in (("--init",), ("--run", "--", "/bin/echo", "native"), ("--cleanup",)):
        proc = subprocess.run([*command, "-b", str(box_id), *args], env=user.env(),
                              cwd=user.home, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == f"{site.top}/boxes/{box_id}\n".encode() and outputs[1] == b"native\n"
    outsider = site.users["outsider"]
    proc = subprocess.run(["setpriv", f"--reuid={outsider.uid}", f"--regid={outsider.gid}",
                           "--init-groups", str(native), "-b", str(box_id), "--init"],
                          env=outsider.env(), cwd="/", capture_output=True, timeout=60)
    assert proc.returncode == 2 and b"may not use root's cellbox daemon" in proc.stderr
