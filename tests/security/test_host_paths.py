"""Host-side paths a run can reach: the meta file when the caller names it inside a
read-write bind, the box's storage directories (which other host users must not enter), and
the caller's own stdout and stderr files, which the program holds as fds 1 and 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.boxes import PY, InitBox, cellbox
from tests.support.hostile import HostCanary, make_canary
from tests.support.proof import ATTACK_STARTED as STARTED
from tests.support.proof import output, run_attack


pytestmark = pytest.mark.security

NOBODY = 65534


@pytest.fixture
def shared(canary_dir: Path) -> Path:
    """A host directory that the box gets read-write at /out (mode 0777: the box user may
    write in it, as any directory bound :rw for results)."""
    d = canary_dir / "shared"
    d.mkdir()
    d.chmod(0o777)
    return d


def run_with_meta(box: InitBox, meta: str, code: str, *opts: str
                  ) -> subprocess.CompletedProcess[bytes]:
    return cellbox("-b", str(box.id), f"--meta={meta}", *opts, "--run", "--", PY, "-c",
                   f"print({STARTED!r}, flush=True)\n" + code)


def assert_refused(proc: subprocess.CompletedProcess[bytes], canary: HostCanary,
                   where: Path, before: list[str]) -> None:
    """Refused before the run (exit 2, saying why), the canary and its directory unchanged."""
    canary.assert_untouched(proc.stdout, proc.stderr)
    assert sorted(os.listdir(where)) == before, "the host wrote a file where the run pointed"
    assert proc.returncode == 2 and b"read-write" in proc.stderr, output(proc)
    assert STARTED.encode() not in proc.stdout


def test_meta_replaced_by_a_link_in_a_read_write_bind(box: InitBox, canary_dir: Path,
                                                      shared: Path) -> None:
    """The reviewer's case: the run swaps the meta file for a link to a root-only file."""
    canary = make_canary(canary_dir)
    before = sorted(os.listdir(canary_dir))
    proc = run_with_meta(box, f"{shared}/meta", f"""
import os
try:
    os.unlink("/out/meta")
except FileNotFoundError:
    pass
os.symlink({str(canary.path)!r}, "/out/meta")
""", f"--dir=/out={shared}:rw")
    assert_refused(proc, canary, canary_dir, before)


def test_meta_directory_replaced_by_a_link(box: InitBox, canary_dir: Path,
                                           shared: Path) -> None:
    """One level up: the run puts a link to a root directory where the meta file's directory
    was, so that the host creates a file of its choosing there."""
    (shared / "results").mkdir(mode=0o777)
    (shared / "results").chmod(0o777)
    canary = make_canary(canary_dir)
    before = sorted(os.listdir(canary_dir))
    proc = run_with_meta(box, f"{shared}/results/meta", f"""
import os
os.rename("/out/results", "/out/old")
os.symlink({str(canary_dir)!r}, "/out/results")
""", f"--dir=/out={shared}:rw")
    assert_refused(proc, canary, canary_dir, before)


def test_meta_named_through_a_host_link_into_the_bind(box: InitBox, canary_dir: Path,
                                                      shared: Path) -> None:
    """The caller's own path goes through a link on the host that leads into the bind."""
    alias = canary_dir / "alias"
    alias.symlink_to(shared)
    canary = make_canary(canary_dir)
    before = sorted(os.listdir(canary_dir))
    proc = run_with_meta(box, f"{alias}/meta", f"""
import os
os.symlink({str(canary.path)!r}, "/out/meta")
""", f"--dir=/out={shared}:rw")
    assert_refused(proc, canary, canary_dir, before)


def test_meta_in_a_read_only_bind_or_outside_still_works(box: InitBox, canary_dir: Path,
                                                         shared: Path) -> None:
    proc = run_with_meta(box, f"{shared}/meta", "", f"--dir=/out={shared}")
    assert proc.returncode == 0, output(proc)
    assert "exitcode:0" in (shared / "meta").read_text()


def as_nobody(code: str, *args: str) -> str:
    proc = subprocess.run([PY, "-c", code, *args], capture_output=True,
                          timeout=30, user=NOBODY, group=NOBODY, extra_groups=[])
    return proc.stdout.decode() + proc.stderr.decode()


OTHER_USER = """
import os, sys
for path in sys.argv[1:]:
    try:
        if path.endswith("/planted"):
            open(path, "x").close()
        else:
            open(path).read()
        print(path, "DONE")
    except OSError as e:
        print(path, e.strerror)
"""


def test_other_host_users_cannot_enter_box_storage(box: InitBox) -> None:
    """A run leaves /box 02777, a world-writable directory in it, and world-readable files in
    /box, /tmp and /dev/shm: no other host user may create or read anything there after the
    run (isolate keeps the box's directory to its owner alone)."""
    run_attack(box, """
os.chmod("/box", 0o2777)
os.mkdir("/box/open", 0o777); os.chmod("/box/open", 0o777)
for f in ("/box/left", "/tmp/left"):
    with open(f, "w") as out:
        out.write("left by the run")
    os.chmod(f, 0o644)
""")
    paths = [f"{box.work}/planted", f"{box.work}/open/planted", f"{box.work}/left",
             f"{box.dir}/tmp/left", f"{box.dir}/tmp/planted"]
    top = box.dir.parent.parent  # the suite's own directory, 0700: open it as a box root is
    mode = top.stat().st_mode
    top.chmod(0o711)
    try:
        got = as_nobody(OTHER_USER, *paths)
    finally:
        top.chmod(mode)
    assert got.count("\n") == len(paths) and "DONE" not in got, got
    st = os.stat(box.dir)
    assert st.st_mode & 0o007 == 0 and st.st_uid == 0, oct(st.st_mode)


# -- the caller's stdio -----------------------------------------------------------------------

# The program gets the caller's output file as fd N: it tries to read what the file held before
# (through /proc/self/fd/N), to truncate it, to overwrite its start, and to move the offset the
# caller shares; what it read goes to the other stream, and "ran" to fd N.
PEEK = """
import os, sys
fd = int(sys.argv[1])
other = sys.stderr if fd == 1 else sys.stdout
try:
    print("read:", open(f"/proc/self/fd/{fd}", "rb").read()[:200], file=other)
except OSError as e:
    print("read:", e.strerror, file=other)
for attack in (lambda: os.ftruncate(fd, 0), lambda: os.pwrite(fd, b"FORGED", 0),
               lambda: os.lseek(fd, 0, os.SEEK_SET)):
    try:
        attack()
    except OSError:
        pass
os.write(fd, b"ran\\n")
"""


@pytest.mark.parametrize("fd", [1, 2])
def test_program_cannot_read_or_rewrite_the_callers_output_file(box: InitBox, tmp_path: Path,
                                                                fd: int) -> None:
    """The caller sends cellbox's stdout (or stderr) to a file in its own 0700 directory,
    through a descriptor that already wrote earlier output (`{ echo ...; cellbox ...; } >
    log`): the program must neither read that (through /proc/self/fd/N), nor truncate or
    overwrite it; its own output follows it."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    out = private / "log"
    secret = f"earlier output {os.urandom(8).hex()}\n"
    box.put("peek.py", PEEK)
    with open(out, "wb") as f:
        f.write(secret.encode())
        f.flush()
        out.chmod(0o644)
        proc = subprocess.run([sys.executable, "-m", "cellbox", "-b", str(box.id), "--run",
                               "--", PY, "peek.py", str(fd)],
                              stdout=f if fd == 1 else subprocess.PIPE,
                              stderr=f if fd == 2 else subprocess.PIPE, timeout=60)
    text = out.read_text()
    other = (proc.stdout if fd == 2 else proc.stderr).decode()
    assert "read:" in other, other  # the program ran
    assert text.startswith(secret) and "ran\n" in text, text
    assert "FORGED" not in text
    assert secret.strip() not in other, "the program read the earlier output"


def write_to_a_file(box: InitBox, path: Path, mib: int) -> subprocess.CompletedProcess[bytes]:
    """A run that writes ``mib`` MiB to its stdout, which is the file ``path``."""
    with open(path, "wb") as f:
        return subprocess.run([sys.executable, "-m", "cellbox", "-b", str(box.id), "--run", "--",
                               PY, "-c", f"import sys; sys.stdout.write('x' * ({mib} << 20))"],
                              stdout=f, stderr=subprocess.PIPE, timeout=120)


def test_stdout_file_still_gets_all_of_a_large_output(box: InitBox, tmp_path: Path) -> None:
    proc = write_to_a_file(box, tmp_path / "big", 8)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "big").stat().st_size == 8 << 20


def test_output_past_the_capture_is_an_output_limit(box: InitBox, tmp_path: Path) -> None:
    """Fail closed: a stdout file gets the first 64 MiB, and the run says it was cut."""
    proc = write_to_a_file(box, tmp_path / "huge", 65)
    assert proc.returncode == 1 and b"utput" in proc.stderr, proc.stderr
    assert (tmp_path / "huge").stat().st_size <= 64 << 20
