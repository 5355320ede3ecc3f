"""Planted symlinks, hard links and FIFOs against every host-side file operation.

A hostile program leaves a link or FIFO exactly where the host will next touch the box: the
stdio files (-i/-o/-r), the meta file, copy-in (library write_file, `cellbox run --file`),
copy-out (read_file), the chown before and after each run, cleanup, and `./` directory rules.
The host must never write, read into output, chown or delete a canary, and never hang.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox import Box, storage
from cellbox.errors import BoxStateError
from tests.support.boxes import PY, InitBox, cellbox, init_next_box, new_box
from tests.support.hostile import HostCanary, dir_listing, make_canary
from tests.support.proof import PY_STARTED, STARTED, output, run_py

pytestmark = pytest.mark.security

KEEP = ("--special-files",)  # keep what the program planted for the next host operation
PY_ECHO = (PY, "-c", "import sys; print('pwned'); print('pwned', file=sys.stderr)")


def plant(box: InitBox, code: str, opts: tuple[str, ...] = KEEP) -> None:
    """Run a planting program (Python, cwd /box) and check it ran."""
    proc, meta = run_py(box, "import os\n" + code, opts=opts)
    assert meta.get("cellbox-status") == "OK", (output(proc), meta)


# -- the meta file ---------------------------------------------------------------------------

@pytest.mark.cgroup2
def test_meta_file_symlink_in_box_is_not_followed(box: InitBox, canary: HostCanary) -> None:
    """The program plants box/meta -> host canary during the very run whose meta file the
    caller asked for at <box>/box/meta (kept with --special-files). The meta must not be
    written through the link (the canary is root's, 0600)."""
    code = PY_STARTED + f"import os; os.symlink({str(canary.path)!r}, 'meta')"
    proc = cellbox("-b", str(box.id), f"--meta={box.work / 'meta'}", *KEEP, "--run", "--",
                   PY, "-c", code)
    assert STARTED in proc.stderr, output(proc)  # the link was planted
    canary.assert_untouched(output(proc))
    assert b"cellbox-status:OK" in (box.work / "meta").read_bytes()  # replaced the link


def test_meta_file_symlink_in_box_tmp_is_not_followed(box: InitBox, canary: HostCanary) -> None:
    """The box's /tmp is <box_dir>/tmp on the host and special files there survive the run:
    a link planted there must not redirect a meta file written to <box_dir>/tmp/meta."""
    code = PY_STARTED + f"import os; os.symlink({str(canary.path)!r}, '/tmp/meta')"
    proc = cellbox("-b", str(box.id), f"--meta={box.dir / 'tmp' / 'meta'}", "--run", "--",
                   PY, "-c", code)
    assert STARTED in proc.stderr, output(proc)  # the link was planted
    canary.assert_untouched(output(proc))


def test_meta_file_under_a_planted_directory_link(box: InitBox, canary_dir: Path) -> None:
    """box/d -> a host directory; -M <box>/box/d/meta must not create a file in it."""
    before = dir_listing(canary_dir)
    plant(box, f"os.symlink({str(canary_dir)!r}, 'd')")
    cellbox("-b", str(box.id), f"--meta={box.work / 'd' / 'meta'}", *KEEP, "--run", "--",
            "/bin/true")
    assert dir_listing(canary_dir) == before


def test_meta_file_fifo_does_not_hang_the_host(box: InitBox) -> None:
    """A FIFO planted at the meta path must not block the host (nobody ever reads it)."""
    plant(box, "os.mkfifo('meta')")
    proc = cellbox("-b", str(box.id), f"--meta={box.work / 'meta'}", *KEEP, "--run", "--",
                   "/bin/true", timeout=20)  # a hang fails with TimeoutExpired
    assert b"cellbox-status:OK" in (box.work / "meta").read_bytes(), output(proc)


# -- stdio files (-i, -o, -r) ----------------------------------------------------------------

@pytest.fixture
def group_canaries(canary_dir: Path) -> Iterator[tuple[HostCanary, HostCanary]]:
    """Two canaries only root's *group* may use: 0640 and 0660, root:root. The caller is put
    in supplementary group 0, as a root shell from sudo is (a bare root may have none)."""
    old = os.getgroups()
    os.setgroups([0])
    yield (make_canary(canary_dir, "readable-by-group", 0o640),
           make_canary(canary_dir, "writable-by-group", 0o660))
    os.setgroups(old)


def test_stdin_link_to_a_group_root_file_is_not_read(
        box: InitBox, canary_dir: Path, group_canaries: tuple[HostCanary, HostCanary]) -> None:
    """-i in, where in -> a 0640 root:root file of a bound directory. The box user may not
    read it; opening stdin "as the box user" must not keep the caller's supplementary
    group 0."""
    readable, _ = group_canaries
    bind = (f"--dir=/data={canary_dir}",)
    plant(box, "os.symlink('/data/readable-by-group', 'in')")
    proc, _ = box.run("/bin/cat", opts=(*KEEP, *bind, "-iin"))
    readable.assert_untouched(output(proc))


def test_stdout_link_to_a_group_root_file_is_not_written(
        box: InitBox, canary_dir: Path, group_canaries: tuple[HostCanary, HostCanary]) -> None:
    """-o out / -r err, where both -> a 0660 root:root file of a read-write bound directory:
    the box user may not write it, so neither may its stdout or stderr."""
    _, writable = group_canaries
    bind = (f"--dir=/data={canary_dir}:rw",)
    plant(box, "os.symlink('/data/writable-by-group', 'out'); "
               "os.symlink('/data/writable-by-group', 'err')", opts=(*KEEP, *bind))
    for opt in ("-oout", "-rerr"):
        box.run(PY_ECHO[0], *PY_ECHO[1:], opts=(*KEEP, *bind, opt))
        writable.assert_untouched()


def test_stderr_link_to_a_root_file_in_a_rw_bind(box: InitBox, canary_dir: Path,
                                                 canary: HostCanary) -> None:
    """-r err, err -> /data/canary (root 0600) in a read-write bind: not written."""
    bind = (f"--dir=/data={canary_dir}:rw",)
    plant(box, "os.symlink('/data/canary', 'err')", opts=(*KEEP, *bind))
    proc, _ = box.run(*PY_ECHO, opts=(*KEEP, *bind, "-rerr"))
    canary.assert_untouched(output(proc))


def test_stdio_fifos_do_not_hang(box: InitBox) -> None:
    """FIFOs planted as -i, -o and -r files: each run ends at once with an error (a FIFO is
    not a regular file), rather than blocking the run on a reader or writer that never comes."""
    plant(box, "[os.mkfifo(n) for n in ('in', 'out', 'err')]")
    for opt in ("-iin", "-oout", "-rerr"):
        proc, meta = box.run("/bin/true", opts=(*KEEP, opt), timeout=20)
        assert meta.get("status") == "XX", (opt, meta, output(proc))


def test_a_fifo_in_a_directory_the_box_may_write_is_refused_even_bound_in(
        box: InitBox, canary_dir: Path) -> None:
    """A directory bound in that the box user may write (here mode 1777) can hold a FIFO an
    earlier run planted: as stdio it is refused at once, as one in the box's own storage is.
    The same FIFO in a directory the box cannot write serves (tests/test_core.py)."""
    canary_dir.chmod(0o1777)
    os.mkfifo(canary_dir / "fifo", 0o666)
    for opt in ("-i/data/fifo", "-o/data/fifo"):
        proc, meta = box.run("/bin/true", opts=(f"--dir=/data={canary_dir}:rw", opt),
                             timeout=20)
        assert meta.get("status") == "XX", (opt, meta, output(proc))
        assert "FIFO in a directory the box may write" in meta["message"]


def test_a_link_in_a_bound_directory_to_a_fifo_in_the_box_is_refused(
        box: InitBox, canary_dir: Path) -> None:
    """The FIFO's own directory decides, not the link's."""
    plant(box, "os.mkfifo('fifo')")
    os.symlink("/box/fifo", canary_dir / "link")
    proc, meta = box.run("/bin/true", opts=(*KEEP, f"--dir=/data={canary_dir}", "-i/data/link"),
                         timeout=20)
    assert meta.get("status") == "XX", (meta, output(proc))


# -- copy-in and copy-out --------------------------------------------------------------------

PLANT_LINKS = """
os.symlink({canary!r}, 'file')
os.symlink({dir!r}, 'dir')
os.mkfifo('fifo')
import socket; socket.socket(socket.AF_UNIX).bind('sock')
"""


def test_copy_in_does_not_follow_planted_links(box: InitBox, canary: HostCanary,
                                               canary_dir: Path) -> None:
    """Copy-in (what Box.write_file and `cellbox run --file` call) onto a planted file link,
    into a planted directory link, and onto a FIFO: the canary and its directory keep
    their contents; the new files land inside the box."""
    plant(box, PLANT_LINKS.format(canary=str(canary.path), dir=str(canary_dir)))
    before = dir_listing(canary_dir)
    storage.write_file(str(box.work), "file", b"pwned")
    storage.write_file(str(box.work), "fifo", b"pwned")  # would block if opened as a FIFO
    with pytest.raises(BoxStateError):
        storage.write_file(str(box.work), "dir/new", b"pwned")
    canary.assert_untouched()
    assert dir_listing(canary_dir) == before
    assert (box.work / "file").read_bytes() == b"pwned"


def test_copy_out_refuses_planted_links_and_specials(box: InitBox, canary: HostCanary,
                                                     canary_dir: Path) -> None:
    """Copy-out (Box.read_file) of a link to a host file, of a file under a link to a host
    directory, of a FIFO and of a socket: refused, without blocking, and no secret returned."""
    plant(box, PLANT_LINKS.format(canary=str(canary.path), dir=str(canary_dir)))
    for name in ("file", "dir/canary", "fifo", "sock"):
        with pytest.raises((BoxStateError, OSError)):  # a socket cannot even be opened
            storage.read_file(str(box.work), name)
    canary.assert_untouched()


SPARSE_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # a failure is a MemoryError
from cellbox import storage
from cellbox.errors import BoxStateError
try:
    data = storage.read_file(sys.argv[1], "big")
    print("read", len(data))
except BoxStateError as e:
    print("refused:", e)
"""


def test_copy_out_of_a_huge_sparse_file_is_refused(box: InitBox) -> None:
    """The box leaves a 1 TiB sparse file (tmpfs allows it within any quota). Copy-out must
    refuse it rather than fill the host's memory with zeros (the attempt runs in a child
    capped at 1 GiB of address space and 30 s); a bounded read with ``limit`` still works."""
    proc, meta = run_py(box, "import os; open('big', 'w'); os.truncate('big', 1 << 40)")
    assert meta.get("cellbox-status") == "OK", output(proc)
    reader = subprocess.run([sys.executable, "-c", SPARSE_READ, str(box.work)],
                            capture_output=True, timeout=30)
    assert b"refused:" in reader.stdout, output(reader)
    assert storage.read_file(str(box.work), "big", limit=10) == bytes(10)


def test_library_copy_in_and_out_after_a_planting_run(canary: HostCanary,
                                                      canary_dir: Path) -> None:
    """Through the library: a run plants links and a FIFO, then the caller writes and reads
    files of those names. Nothing of the host is written or returned."""
    before = dir_listing(canary_dir)
    with Box() as box:
        r = box.run([PY_ECHO[0], "-c", "import os\n" + PLANT_LINKS.format(
            canary=str(canary.path), dir=str(canary_dir))])
        assert r.status.name == "OK", r.stderr
        for name in ("file", "dir/canary", "fifo", "sock"):
            with pytest.raises(OSError):  # removed after the run, or refused
                box.read_file(name)
        box.write_file("file", b"pwned")
        box.write_file("dir/new", b"pwned")
        assert box.read_file("file") == b"pwned"
    canary.assert_untouched()
    assert dir_listing(canary_dir) == before


def test_oneshot_file_names_stay_in_the_box(canary_dir: Path) -> None:
    """`cellbox run --file SRC:NAME` with NAME climbing out (../) is refused and creates
    nothing on the host."""
    src = canary_dir / "src"
    src.write_text("payload")
    before = dir_listing(canary_dir)
    for name in ("../../../" + str(canary_dir / "escaped"), "../escaped"):
        proc = cellbox("run", "--silent", f"--file={src}:{name}", "--", "/bin/true")
        assert proc.returncode != 0, output(proc)
    assert dir_listing(canary_dir) == before


# -- chown and cleanup -----------------------------------------------------------------------

def test_chown_before_and_after_runs_does_not_follow_links(canary: HostCanary,
                                                          canary_dir: Path) -> None:
    """The box belongs to uid 4321, so the host chowns box files to the box uid before each
    run and back to 4321 after it. Links to a root-owned canary file and to a directory of
    canaries must never be followed: owners, modes and contents stay."""
    inner = make_canary(canary_dir, "inner")
    before = dir_listing(canary_dir)
    with new_box("--as-uid=4321", "--as-gid=4321") as b:
        plant(b, f"os.symlink({str(canary.path)!r}, 'file'); "
                 f"os.symlink({str(canary_dir)!r}, 'dir'); os.mkdir('sub'); "
                 f"os.symlink({str(canary_dir)!r}, 'sub/dir')")
        b.run("/bin/true", opts=KEEP)
    canary.assert_untouched()
    inner.assert_untouched()
    assert dir_listing(canary_dir) == before


def test_cleanup_does_not_follow_links(box: InitBox, canary: HostCanary,
                                       canary_dir: Path) -> None:
    """Links in box/ and in the box's /tmp to a host file and a host directory, then
    --cleanup: nothing of the host is deleted or changed."""
    before = dir_listing(canary_dir)
    plant(box, f"os.symlink({str(canary.path)!r}, 'file'); "
               f"os.symlink({str(canary_dir)!r}, 'dir'); "
               f"os.symlink({str(canary.path)!r}, '/tmp/file'); "
               f"os.symlink({str(canary_dir)!r}, '/tmp/dir')")
    proc = cellbox("-b", str(box.id), "--cleanup")
    assert proc.returncode == 0, output(proc)
    box_again = cellbox("-b", str(box.id), "--init")  # the fixture's own cleanup needs a box
    assert box_again.returncode == 0, output(box_again)
    canary.assert_untouched()
    assert dir_listing(canary_dir) == before


def test_box_and_tmp_cannot_be_swapped_for_links(box: InitBox, canary_dir: Path) -> None:
    """The program tries to replace /box and /tmp (which the host chmods and empties before
    every run) with links to a host directory. The next run's host-side work must still hit
    the box's own directories: the host directory keeps its mode and contents."""
    before = dir_listing(canary_dir)
    code = f"""
import os
for d in ("/box", "/tmp"):
    for attack in (lambda: os.rename(d, d + ".old"), lambda: os.rmdir(d),
                   lambda: os.symlink({str(canary_dir)!r}, d)):
        try:
            attack()
        except OSError:
            pass
"""
    run_py(box, code, opts=("--chdir=/",))
    proc, meta = run_py(box, "open('/tmp/x', 'w').write('x')")
    assert meta["cellbox-status"] == "OK", output(proc)
    assert dir_listing(canary_dir) == before
    assert stat.S_IMODE(os.stat(box.dir / "tmp").st_mode) == 0o1777


# -- directory rules relative to the box ----------------------------------------------------

@pytest.mark.parametrize("form", ["relative", "absolute", "dotdot"])
def test_dir_rule_into_the_box_does_not_follow_a_planted_link(box: InitBox, canary_dir: Path,
                                                              form: str) -> None:
    """--dir=/data=./box/data (or the same path given absolute, or as ./box/data/x/.. ) binds
    a directory of the box. If the box made box/data a link to a host directory, the host
    must not bind that host directory into the box."""
    readable = make_canary(canary_dir, "world-readable", 0o644)  # readable if ever bound
    plant(box, f"os.symlink({str(canary_dir)!r}, 'data')")
    source = {"relative": "./box/data", "absolute": str(box.work / "data"),
              "dotdot": "./box/data/x/.."}[form]
    proc, _ = box.run(PY, "-c", "print(open('/data/world-readable').read())",
                      opts=(*KEEP, f"--dir=/data={source}"))
    readable.assert_untouched(output(proc))


def test_mount_points_under_a_planted_link(box: InitBox, canary_dir: Path) -> None:
    """--dir=/box/a/mnt=/usr makes init (root, before pivot_root, seeing the host's files)
    create a mount point under the box's directory. If the box made box/a a link to a host
    directory, init must not create the mount point, nor mount anything, there."""
    before = dir_listing(canary_dir)
    plant(box, f"os.symlink({str(canary_dir)!r}, 'a')")
    proc, meta = box.run(PY, "-c", "import os; print(os.listdir('/box/a'))",
                         opts=(*KEEP, "--dir=/box/a/mnt=/usr"))  # may be refused: fine
    assert dir_listing(canary_dir) == before, output(proc)


# -- trees the host walks --------------------------------------------------------------------

DEEP = """
import os
for top in ("/box", "/tmp"):
    os.chdir(top)
    for _ in range(1500):
        os.mkdir("d")
        os.chdir("d")
    os.mkfifo("fifo")
    os.symlink({canary!r}, "link")
print("deep")
"""


def test_deep_trees_do_not_wedge_the_box(canary: HostCanary) -> None:
    """1500 nested directories in /box and in /tmp, with a FIFO and a link to a host file at
    the bottom. The host's walks (special-file removal, chown back to the owner, emptying
    /tmp before the next run) must neither crash nor follow the link: the run reports
    normally, the bottom is cleaned and chowned, the next run and --cleanup work."""
    b = init_next_box("--as-uid=4321", "--as-gid=4321")
    try:
        proc, meta = run_py(b, DEEP.format(canary=str(canary.path)), opts=("--chdir=/",))
        assert meta.get("cellbox-status") == "OK", output(proc)
        bottom = b.work / "/".join(["d"] * 1500)
        assert os.listdir(bottom) == [], "special files left at the bottom"
        assert os.stat(bottom).st_uid == 4321
        proc, meta = run_py(b, "import os; print(os.listdir('/tmp'))")
        assert meta.get("cellbox-status") == "OK" and b"[]" in proc.stdout, output(proc)
    finally:
        proc = cellbox("-b", str(b.id), "--cleanup")
    assert proc.returncode == 0, output(proc)
    canary.assert_untouched()


SETUID_LEFT = """
import os, shutil
shutil.copy("/bin/true", "suid")
os.chmod("suid", 0o6755)
os.mkdir("sgid-dir")
os.chmod("sgid-dir", 0o2777)
shutil.copy("/bin/true", "sgid-dir/suid")
os.chmod("sgid-dir/suid", 0o6755)
"""


def test_setuid_files_left_in_the_box_do_not_become_roots(box: InitBox) -> None:
    """The program leaves setuid and setgid executables for the host, which chowns box files
    back to their owner (root here) after the run. None may end up a setuid-root or
    setgid-root file, and box storage is mounted nosuid on the host anyway."""
    proc, meta = run_py(box, SETUID_LEFT)
    assert meta.get("cellbox-status") == "OK", output(proc)
    for path in (box.work / "suid", box.work / "sgid-dir" / "suid"):
        st = os.lstat(path)
        assert not (st.st_mode & stat.S_ISUID and st.st_uid == 0), oct(st.st_mode)
        assert not (st.st_mode & stat.S_ISGID and st.st_gid == 0), oct(st.st_mode)
    assert os.statvfs(box.dir).f_flag & os.ST_NOSUID
