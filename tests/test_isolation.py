"""Isolation, on the real kernel: namespaces, the box's filesystem, identity, network.

Every check runs a probe inside a box (mostly /usr/bin/python3 printing JSON) and compares
with what the host sees. Nothing here sends traffic off the machine: the only connects go to
loopback or to unroutable addresses that must fail at once with ENETUNREACH.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import stat
import uuid
from pathlib import Path

import pytest

from cellbox.linux.mounts import PROC_MASKED, PROC_READ_ONLY
from tests.support.boxes import FIRST_UID, PY, InitBox, new_box
from tests.support.proof import probe
from tests.support.rootless import in_both_modes

pytestmark = pytest.mark.isolation

HAS_LIB64 = os.path.exists("/lib64")
LIB64 = {"lib64"} if HAS_LIB64 else set()
DEFAULT_TOP = {"box", "bin", "dev", "lib", "proc", "tmp", "usr"} | LIB64


def ns_inode(name: str) -> int:
    return os.stat(f"/proc/self/ns/{name}").st_ino


def host_interfaces() -> list[str]:
    with open("/proc/net/dev") as f:
        return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])


# -- namespaces ------------------------------------------------------------------------------

@in_both_modes
@pytest.mark.cgroup2
def test_new_pid_namespace_hides_host_processes(box: InitBox) -> None:
    got = probe(box, """
import json, os
print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(),
                  "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}))
""")
    assert got["pid"] <= 3, got
    assert got["pid"] in got["procs"]
    # Only the program itself (and at most its init) is visible: no host process at all.
    assert len(got["procs"]) <= 2, got
    assert os.getpid() not in got["procs"]
    assert all(p <= 3 for p in got["procs"]), got


@in_both_modes
def test_every_namespace_differs_from_the_host(box: InitBox) -> None:
    got = probe(box, """
import json, os
print(json.dumps({n: os.readlink("/proc/self/ns/" + n) for n in
                  ("pid", "mnt", "net", "ipc", "uts")}))
""")
    for name, link in got.items():
        assert link.startswith(f"{name}:[")
        inside = int(link[len(name) + 2:-1])
        assert inside != ns_inode(name), f"the box shares the host's {name} namespace"


@in_both_modes
def test_hostname_is_cellbox_and_host_keeps_its_own(box: InitBox) -> None:
    host_before = socket.gethostname()
    got = probe(box, """
import json, os
print(json.dumps([os.uname().nodename, open("/proc/sys/kernel/hostname").read().strip()]))
""")
    assert got == ["cellbox", "cellbox"]
    assert socket.gethostname() == host_before


@in_both_modes
def test_sysv_ipc_namespace_is_separate(box: InitBox) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    ipc_private, ipc_creat, ipc_rmid = 0, 0o1000, 0
    shmid = libc.shmget(ipc_private, 4096, ipc_creat | 0o600)
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    try:
        with open("/proc/sysvipc/shm") as f:
            assert any(line.split()[1] == str(shmid) for line in f.readlines()[1:])
        got = probe(box, """
import json, os
print(json.dumps({"ns": os.readlink("/proc/self/ns/ipc"),
                  "shm": open("/proc/sysvipc/shm").read().splitlines()[1:]}))
""")
        assert got["shm"] == [], "the host's SysV shared memory is visible in the box"
        assert got["ns"] != f"ipc:[{ns_inode('ipc')}]"
    finally:
        libc.shmctl(shmid, ipc_rmid, None)


def test_sysv_ipc_objects_do_not_survive_a_run(box: InitBox) -> None:
    made = probe(box, """
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
shmid = libc.shmget(0, 4096, 0o1000 | 0o600)
print(json.dumps({"id": shmid, "shm": open("/proc/sysvipc/shm").read().splitlines()[1:]}))
""")
    assert made["id"] >= 0 and len(made["shm"]) == 1
    later = probe(box, """
import json
print(json.dumps(open("/proc/sysvipc/shm").read().splitlines()[1:]))
""")
    assert later == []


# -- network ---------------------------------------------------------------------------------

NET_PROBE = """
import errno, json, socket
out = {"ifaces": sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])}
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname(), timeout=5)
a, _ = l.accept(); c.sendall(b"ping"); out["loopback"] = a.recv(4).decode()
# UDP connect() only looks the route up and sends nothing: even if the box's network namespace
# failed, no packet would leave the machine.
for addr, fam in (("10.0.0.1", socket.AF_INET), ("192.0.2.1", socket.AF_INET),
                  ("2001:db8::1", socket.AF_INET6)):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.connect((addr, 80)); out[addr] = "connected"
    except OSError as e:
        out[addr] = errno.errorcode.get(e.errno, str(e))
print(json.dumps(out))
"""


@in_both_modes
def test_only_loopback_and_it_is_up(box: InitBox) -> None:
    got = probe(box, NET_PROBE)
    assert got["ifaces"] == ["lo"]
    assert got["loopback"] == "ping"


def test_no_route_off_the_box(box: InitBox) -> None:
    got = probe(box, NET_PROBE)
    for addr in ("10.0.0.1", "192.0.2.1", "2001:db8::1"):
        assert got[addr] == "ENETUNREACH", got  # at once: no route, nothing to wait for


def test_share_net_keeps_the_host_network(box: InitBox) -> None:
    own = probe(box, 'import json, os; print(json.dumps(os.readlink("/proc/self/ns/net")))')
    shared = probe(box, """
import json, os
print(json.dumps({"ns": os.readlink("/proc/self/ns/net"),
                  "ifaces": sorted(l.split(":")[0].strip()
                                   for l in open("/proc/net/dev").readlines()[2:])}))
""", opts=("--share-net",))
    assert shared["ns"] == f"net:[{ns_inode('net')}]"
    assert own != shared["ns"]
    assert shared["ifaces"] == host_interfaces()


# -- the box's filesystem --------------------------------------------------------------------

MOUNTS_PROBE = """
import json, os
mounts = {}
for line in open("/proc/self/mountinfo"):
    f = line.split()
    sep = f.index("-")
    mounts[f[4]] = {"opts": f[5].split(","), "fstype": f[sep + 1]}
print(json.dumps({"top": sorted(os.listdir("/")), "mounts": mounts}))
"""


def test_only_the_default_directories_are_visible(box: InitBox) -> None:
    got = probe(box, MOUNTS_PROBE)
    assert set(got["top"]) == DEFAULT_TOP
    expected = {"/", "/box", "/bin", "/dev", "/dev/shm", "/lib", "/proc", "/tmp", "/usr"}
    if HAS_LIB64:
        expected.add("/lib64")
    # Masks over kernel files in /proc (tests/security checks what they hide).
    expected |= {f"/proc/{name}" for name in (*PROC_MASKED, *PROC_READ_ONLY)
                 if os.path.exists(f"/proc/{name}")}
    assert set(got["mounts"]) == expected
    assert not any(box.dir.parent.as_posix() in m for m in got["mounts"])


@in_both_modes
def test_root_and_system_dirs_are_read_only(box: InitBox) -> None:
    got = probe(box, """
import errno, json, os
out = {}
for p in ("/newfile", "/usr/newfile", "/bin/newfile", "/lib/newfile", "/dev/newfile"):
    try:
        open(p, "w").close(); out[p] = "written"
    except OSError as e:
        out[p] = errno.errorcode[e.errno]
try:
    os.mkdir("/newdir"); out["mkdir"] = "made"
except OSError as e:
    out["mkdir"] = errno.errorcode[e.errno]
open("/box/ok", "w").write("x"); open("/tmp/ok", "w").write("x"); open("/dev/shm/ok", "w")
print(json.dumps(out))
""")
    assert set(got.values()) == {"EROFS"}, got


def test_mount_options_nosuid_nodev_ro(box: InitBox) -> None:
    mounts = probe(box, MOUNTS_PROBE)["mounts"]
    for point, m in mounts.items():
        assert "nosuid" in m["opts"], (point, m)
        if point != "/dev":
            assert "nodev" in m["opts"], (point, m)
    for point in ("/", "/bin", "/lib", "/usr", "/dev"):
        assert "ro" in mounts[point]["opts"], (point, mounts[point])
    for point in ("/box", "/tmp", "/dev/shm"):
        assert "rw" in mounts[point]["opts"], (point, mounts[point])
    assert "noexec" in mounts["/dev"]["opts"]
    assert "noexec" in mounts["/proc"]["opts"]
    assert mounts["/proc"]["fstype"] == "proc"


@in_both_modes
def test_dev_has_only_the_minimal_nodes(box: InitBox) -> None:
    got = probe(box, """
import errno, json, os, stat
out = {"names": sorted(os.listdir("/dev")), "nodes": {}, "links": {}}
for n in out["names"]:
    st = os.lstat("/dev/" + n)
    if stat.S_ISCHR(st.st_mode):
        out["nodes"][n] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
    elif stat.S_ISLNK(st.st_mode):
        out["links"][n] = os.readlink("/dev/" + n)
    else:
        out["nodes"][n] = "dir" if stat.S_ISDIR(st.st_mode) else "other"
out["zero"] = open("/dev/zero", "rb").read(4).hex()
open("/dev/null", "w").write("x")
try:
    with open("/dev/full", "w") as f:
        f.write("x")
    out["full"] = "written"
except OSError as e:
    out["full"] = errno.errorcode[e.errno]
print(json.dumps(out))
""")
    assert got["names"] == sorted(["null", "zero", "full", "random", "urandom", "fd", "stdin",
                                   "stdout", "stderr", "shm"])
    assert got["nodes"] == {"null": [1, 3], "zero": [1, 5], "full": [1, 7], "random": [1, 8],
                            "urandom": [1, 9], "shm": "dir"}
    assert got["links"] == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                            "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    assert got["zero"] == "00000000"
    assert got["full"] == "ENOSPC"


@in_both_modes
def test_host_files_are_not_visible(box: InitBox, host_dir: Path) -> None:
    canary = host_dir / f"cellbox-canary-{uuid.uuid4().hex}"
    canary.write_text("host secret")
    got = probe(box, f"""
import json, os
print(json.dumps([p for p in ({str(canary)!r}, {str(host_dir)!r}, "/etc/passwd", "/root",
                               "/home", "/var", "/sys", "/run", {str(box.dir)!r})
                  if os.path.lexists(p)]))
""")
    assert got == []
    assert canary.read_text() == "host secret"


# -- directory rules -------------------------------------------------------------------------

@pytest.fixture
def hostdir(tmp_path: Path) -> Path:
    d = tmp_path / "hostdir"
    d.mkdir()
    d.chmod(0o777)
    (d / "hello.txt").write_text("hello from the host\n")
    shutil.copy("/bin/true", d / "true")
    (d / "true").chmod(0o755)
    return d


WRITE_PROBE = """
import errno, json, os
out = {"read": open("/data/hello.txt").read()}
try:
    open("/data/new.txt", "w").write("from the box")
    out["write"] = "ok"
except OSError as e:
    out["write"] = errno.errorcode[e.errno]
out["opts"] = [l.split()[5] for l in open("/proc/self/mountinfo") if l.split()[4] == "/data"]
print(json.dumps(out))
"""


def test_dir_rule_binds_read_only_by_default(box: InitBox, hostdir: Path) -> None:
    got = probe(box, WRITE_PROBE, opts=(f"--dir=/data={hostdir}",))
    assert got["read"] == "hello from the host\n"
    assert got["write"] == "EROFS"
    assert got["opts"][0].split(",")[0] == "ro"
    assert not (hostdir / "new.txt").exists()


def test_dir_rule_rw_is_writable(box: InitBox, hostdir: Path) -> None:
    got = probe(box, WRITE_PROBE, opts=(f"--dir=/data={hostdir}:rw",))
    assert got["write"] == "ok"
    opts = got["opts"][0].split(",")
    assert "rw" in opts and "nosuid" in opts and "nodev" in opts
    new = hostdir / "new.txt"
    assert new.read_text() == "from the box"
    assert new.stat().st_uid == FIRST_UID + box.id


def test_dir_rule_noexec(box: InitBox, hostdir: Path) -> None:
    code = """
import errno, json, subprocess
try:
    out = subprocess.run(["/data/true"]).returncode
except OSError as e:
    out = errno.errorcode[e.errno]
print(json.dumps(out))
"""
    assert probe(box, code, opts=("-p", f"-d/data={hostdir}")) == 0
    assert probe(box, code, opts=("-p", f"-d/data={hostdir}:noexec")) == "EACCES"


def test_dir_rule_maybe_skips_a_missing_source(box: InitBox, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    got = probe(box, 'import json, os; print(json.dumps(sorted(os.listdir("/"))))',
                opts=(f"-d/data={missing}:maybe",))
    assert set(got) == DEFAULT_TOP
    assert not missing.exists()


def test_dir_rule_missing_source_is_an_error(box: InitBox, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    proc, meta = box.run("/bin/true", opts=(f"-d/data={missing}",))
    assert proc.returncode == 2
    assert b"does not exist" in proc.stderr
    assert not missing.exists()
    proc, meta = box.run("/bin/true")  # the box is still usable
    assert proc.returncode == 0 and meta["cellbox-status"] == "OK"


def test_no_default_dirs_removes_every_default(box: InitBox) -> None:
    opts = ("-D", "-d/usr", "-d/lib", "-d/lib64:maybe", "-d/bin", "-c/usr")
    got = probe(box, 'import json, os; print(json.dumps([sorted(os.listdir("/")), os.getcwd()]))',
                opts=opts)
    assert set(got[0]) == {"bin", "lib", "usr"} | LIB64
    assert got[1] == "/usr"


def test_chdir_to_root(box: InitBox) -> None:
    proc, meta = box.run(PY, "-c", "import os; print(os.getcwd())", opts=("--chdir=/",))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == "/"


# -- identity --------------------------------------------------------------------------------

@in_both_modes
def test_runs_as_box_user_without_capabilities(box: InitBox) -> None:
    got = probe(box, """
import json, os
st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
print(json.dumps({k: st[k].split() for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm",
                                               "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}))
""")
    uid = str(FIRST_UID + box.id)
    assert got["Uid"] == [uid] * 4
    assert got["Gid"] == [uid] * 4
    assert got["Groups"] == []
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(got[cap][0], 16) == 0, (cap, got[cap])
    assert got["NoNewPrivs"] == ["1"]


# -- stdio paths the box controls ------------------------------------------------------------

@in_both_modes
def test_stdout_symlink_planted_by_the_box_cannot_write_host_files(
        box: InitBox, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("untouched\n")
    etc_target = f"/etc/cellbox-canary-{uuid.uuid4().hex}"
    plant = (f"import os; os.symlink({str(canary)!r}, 'out1'); "
             f"os.symlink({etc_target!r}, 'out2'); os.symlink('/proc/1/environ', 'in1')")
    proc, meta = box.run(PY, "-c", plant, opts=("--special-files",))
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    assert os.readlink(box.work / "out1") == str(canary)
    try:
        for name in ("out1", "out2"):
            box.run("/bin/echo", "pwned", opts=("--special-files", f"-o{name}"))
            assert canary.read_text() == "untouched\n"
            assert not os.path.lexists(etc_target), f"-o {name} created a file on the host"
        assert stat.S_ISLNK(os.lstat(box.work / "out1").st_mode)
    finally:
        if os.path.isfile(etc_target):  # our own canary, made only if the sandbox failed
            os.unlink(etc_target)


@in_both_modes
def test_stdin_symlink_cannot_read_host_or_init_data(
        box: InitBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"cellbox-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("CELLBOX_TEST_SECRET", secret)  # in the keeper's (and init's) env
    host_file = tmp_path / "secret.txt"
    host_file.write_text(secret)
    plant = (f"import os; os.symlink({str(host_file)!r}, 'in1'); "
             "os.symlink('/proc/1/environ', 'in2'); os.symlink('/proc/1/cmdline', 'in3')")
    proc, meta = box.run(PY, "-c", plant, opts=("--special-files",))
    assert meta["cellbox-status"] == "OK", (proc.stderr, meta)
    for name in ("in1", "in2", "in3"):
        proc, meta = box.run("/bin/cat", opts=("--special-files", f"-i{name}"))
        assert secret.encode() not in proc.stdout, f"-i {name} leaked host data"
        assert b"CELLBOX_CONFIG" not in proc.stdout, f"-i {name} leaked init's environment"


def test_special_files_are_removed_after_a_run(box: InitBox, tmp_path: Path) -> None:
    proc, meta = box.run(PY, "-c", f"import os; os.symlink({str(tmp_path)!r}, 'link'); "
                         "os.mkfifo('fifo')")
    assert meta["cellbox-status"] == "OK", proc.stderr
    assert not os.path.lexists(box.work / "link")
    assert not os.path.lexists(box.work / "fifo")


# -- per-run and per-box private directories -------------------------------------------------

LIST_AND_MARK = """
import json, os
out = {"tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm"))}
open("/tmp/marker", "w").write("x"); open("/dev/shm/marker", "w").write("x")
print(json.dumps(out))
"""


def test_tmp_and_shm_are_private_and_fresh(box: InitBox) -> None:
    assert probe(box, LIST_AND_MARK) == {"tmp": [], "shm": []}
    assert (box.dir / "tmp" / "marker").exists()  # the run's /tmp is the box's own
    with new_box(box_id=150) as other:
        assert probe(other, LIST_AND_MARK) == {"tmp": [], "shm": []}
    assert probe(box, LIST_AND_MARK) == {"tmp": [], "shm": []}
