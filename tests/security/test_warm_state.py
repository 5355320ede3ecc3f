"""What a run may change about the box's own directories (/box, /tmp, /dev/shm themselves, not
their contents), and that the next run gets none of it: through the warm pool, and through
the command line on the same box. The list of what is renewed is ``storage.DIR_STATE``; a
test fails when the kernel shows an attribute it does not cover."""

from __future__ import annotations

import json
import os

import pytest

from cellbox import Limits, Pool, Status, storage
from tests.support.boxes import PY, InitBox
from tests.support.hostile import HOSTILE_PROGRAMS as PROGRAMS
from tests.support.proof import ATTACK_STARTED as STARTED
from tests.support.proof import output, run_attack


pytestmark = [pytest.mark.security, pytest.mark.pool]

DIRS = ("/box", "/tmp", "/dev/shm")
KEYRING = (PROGRAMS / "keyring.py").read_text()

# Every attribute of each directory, as the program sees it.
SNAPSHOT = """
import fcntl, json, os, struct
out = {}
for d in ("/box", "/tmp", "/dev/shm"):
    st = os.stat(d)
    snap = {k: getattr(st, k) for k in dir(st) if k.startswith("st_")}
    snap["xattrs"] = {n: os.getxattr(d, n).hex() for n in os.listxattr(d)}
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        snap["flags"] = struct.unpack("i", fcntl.ioctl(fd, 0x80086601, bytes(4)))[0]
    except OSError as e:
        snap["flags"] = -e.errno
    os.close(fd)
    out[d] = snap
print(json.dumps(out))
"""

# Change everything about each directory that its owner (or anyone) may change: xattrs up to
# 64 KiB, an access and a default ACL, inode flags (nodump, noatime), times, and the mode (last:
# 0 for /box, which the reviewer saw break every later run of the slot).
TAMPER = """
import fcntl, os, struct
ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, 7, who) for tag, who in (
    (1, 0xFFFFFFFF), (2, 12345), (4, 0xFFFFFFFF), (0x10, 0xFFFFFFFF), (0x20, 0xFFFFFFFF)))

def set_flags(d):
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, 0x40086602, struct.pack("i", 0x40 | 0x80))
    finally:
        os.close(fd)

for d in ("/tmp", "/dev/shm", "/box"):
    for name, attack in (("xattr", lambda: os.setxattr(d, "user.cellbox", b"s" * 65536)),
                         ("acl", lambda: os.setxattr(d, "system.posix_acl_access", ACL)),
                         ("default_acl", lambda: os.setxattr(d, "system.posix_acl_default", ACL)),
                         ("flags", lambda: set_flags(d)),
                         ("times", lambda: os.utime(d, (1234567890, 1234567890))),
                         ("mode", lambda: os.chmod(d, 0 if d == "/box" else 0o777))):
        try:
            attack()
            print(d, name, "DONE")
        except OSError as e:
            print(d, name, e)
"""



def compare(fresh: dict, later: dict) -> list[str]:
    problems = []
    for d in DIRS:
        for item, how in storage.DIR_STATE.items():
            if item not in fresh[d]:
                continue
            a, b = fresh[d][item], later[d][item]
            if how == "now":  # the time of a renewal (TAMPER set them back to 2009)
                ok = b >= a
            elif how == "per-box":  # the same box's own (inode, device): fixed for its life
                ok = True
            else:  # "renewed" or "contents" (emptied): as in a fresh box
                ok = a == b
            if not ok:
                problems.append(f"{d} {item}: {a!r} in a fresh box, {b!r} after the tamperer")
    return problems


def snapshot(result) -> dict:  # noqa: ANN001
    assert result.status is Status.OK, result
    return json.loads(result.stdout)


def test_every_directory_attribute_is_on_the_list() -> None:
    """The list covers every field of stat and the xattrs and inode flags: a new one (a
    Python or kernel that shows more) fails here until the list says how it is renewed."""
    shown = {k for k in dir(os.stat_result) if k.startswith("st_")} | {"xattrs", "flags"}
    assert shown <= storage.DIR_STATE.keys(), shown - storage.DIR_STATE.keys()
    assert set(storage.DIR_STATE.values()) <= {"renewed", "now", "contents", "per-box"}


def test_pool_run_after_a_tamperer_sees_a_fresh_box() -> None:
    with Pool(size=1) as pool:
        fresh = snapshot(pool.run([PY, "-c", SNAPSHOT]))
        tampered = pool.run([PY, "-c", TAMPER])
        assert tampered.status is Status.OK, tampered
        assert b"/box mode DONE" in tampered.stdout and b"/box xattr DONE" in tampered.stdout, (
            tampered.stdout)
        later = pool.run([PY, "-c", SNAPSHOT])
    assert compare(fresh, snapshot(later)) == []


def test_pool_slot_survives_a_box_made_unusable() -> None:
    """The reviewer's case: chmod 0 /box made every later run of the slot fail (XX)."""
    with Pool(size=1) as pool:
        r = pool.run(["/bin/sh", "-c", "chmod 0 /box; chmod 0 /tmp /dev/shm; echo done"],
                     limits=Limits(processes=2))
        assert r.status is Status.OK and r.stdout == b"done\n", r
        for _ in range(2):
            r = pool.run(["/bin/sh", "-c", "echo hi > /box/f && cat /box/f"],
                         limits=Limits(processes=2))
            assert r.status is Status.OK and r.stdout == b"hi\n", r


def test_pool_xattrs_do_not_pass_to_the_next_tenant() -> None:
    """A 64 KiB user.* xattr on /box, read back by the next run."""
    code = """
import os, sys
if sys.argv[1] == "put":
    os.setxattr("/box", "user.note", b"n" * 65536)
    print("put")
else:
    print(sorted(os.listxattr("/box")), sorted(os.listxattr("/tmp")))
"""
    with Pool(size=1) as pool:
        put = pool.run([PY, "-c", code, "put"])
        assert put.status is Status.OK and put.stdout == b"put\n", put
        got = pool.run([PY, "-c", code, "get"])
    assert got.status is Status.OK and got.stdout == b"[] []\n", got


def test_cli_run_after_a_tamperer_sees_a_fresh_box(box: InitBox) -> None:
    """The same box through --run: /box keeps the caller's files between runs, but not what a
    run did to the directory itself."""
    fresh = json.loads(run_attack(box, SNAPSHOT).split("\n", 1)[1])
    out = run_attack(box, TAMPER)
    assert "/box mode DONE" in out, out
    proc, meta = box.run(PY, "-c", f"print({STARTED!r}, flush=True)\n" + SNAPSHOT)
    assert meta.get("exitcode") == "0", (output(proc), meta)
    later = json.loads(proc.stdout.decode().split("\n", 1)[1])
    assert compare(fresh, later) == []
    st = os.stat(box.work)
    assert (st.st_mode & 0o7777, os.listxattr(box.work)) == (0o700, []), st


@pytest.mark.parametrize("ring", ["user", "session", "persistent"])
def test_pool_keyrings_do_not_carry_over(ring: str) -> None:
    """The warm pool's runs share one init, whose session keyring the program would start
    with, and one uid: with the keyring calls allowed, nothing stored passes on."""
    secret = "cellbox-keyring-" + os.urandom(8).hex()
    allowed = ["+keyctl", "+add_key"]
    with Pool(size=1) as pool:
        put = pool.run([PY, "-c", KEYRING, "put", ring, secret], syscalls=allowed)
        try:
            assert put.status is Status.OK and f"stored\nSAW {secret}" in put.stdout.decode(), put
            got = pool.run([PY, "-c", KEYRING, "get", ring], syscalls=allowed)
        finally:
            pool.run([PY, "-c", KEYRING, "clear", ring], syscalls=allowed)
    assert got.status is Status.OK and secret.encode() not in got.stdout, got
