"""CMS's grading through cellbox, as CMS's worker runs it: an ordinary user (CMS runs as its
own user) calls ``cellbox`` where CMS calls ``isolate``, through root's daemon, with exactly the
options of CMS's IsolateSandbox (cms/grading/Sandbox.py: the constructor's cleanup and
--init, ``build_box_options`` in its order, ``cleanup(delete=True)``'s chmod run and
--cleanup) and the step values of cms/grading/steps (compilation, evaluation) and
cms/grading/tasktypes/Communication.py, with the limits of CMS's sample configuration.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.boxes import parse_meta
from tests.support.users import Site, User, next_box_id, site  # noqa: F401

pytestmark = pytest.mark.daemon

# CMS's sample configuration (config/cms.sample.toml)
MAX_FILE_SIZE_KIB = 1_048_576
COMPILATION_PROCESSES, COMPILATION_TIME, COMPILATION_MEMORY_KIB = 1000, 10.0, 524_288
TRUSTED_TIME, TRUSTED_MEMORY_KIB = 10.0, 4_194_304

BATCH_C = r"""
#include <stdio.h>
int main(void) { long a, b; if (scanf("%ld %ld", &a, &b) != 2) return 1;
                 printf("%ld\n", a + b); return 0; }
"""
# Communication's manager: FIFOs to and from the user as arguments, input.txt on stdin,
# the outcome on stdout and the text on stderr. Built-ins only: one process.
MANAGER = """#!/bin/sh
exec 3>"$2" 4<"$1"
read a b
echo "$a $b" >&3
read sum <&4
if [ "$sum" = "$((a + b))" ]; then echo 1.0; echo correct >&2; else echo 0.0; echo "wrong: $sum" >&2; fi
"""
USER_STD_IO = """#!/bin/sh
read a b
echo $((a + b))
"""
USER_FIFO_IO = """#!/bin/sh
exec 3<"$1" 4>"$2"
read a b <&3
echo $((a + b)) >&4
"""


@dataclass
class CmsSandbox:
    """One IsolateSandbox of the CMS user: its directories and the command lines it issues."""

    user: User
    box_id: int
    outer: Path  # mkdtemp of the CMS user: the meta files
    home: Path  # <outer>/home, bound at /tmp, the programs' working directory
    dirs: list[str] = field(default_factory=list)
    runs: int = 0

    @classmethod
    def create(cls, user: User) -> CmsSandbox:
        outer = Path(tempfile.mkdtemp(prefix="cms-", dir=user.home))
        (outer / "home").mkdir()
        for d in (outer, outer / "home"):
            os.chown(d, user.uid, user.gid)
        box = cls(user, next_box_id(), outer, outer / "home")
        box.allow_writing(0o777)
        box.dirs = [f"--dir=/tmp={box.home}:rw", "--dir=/dev/shm:tmp"]
        for src, options in (("/etc/alternatives", None), ("/opt/pypy3", None),
                             ("/etc/mono", "noexec")):
            if os.path.exists(src):
                box.dirs.append(f"--dir={src}" + (f":{options}" if options else ""))
        # Constructor: an idempotent cleanup, then --init (both check_call).
        for args in (("--cleanup",), ("--init",)):
            proc = box.isolate(f"--box-id={box.box_id}", "--cg", *args)
            assert proc.returncode == 0, proc.stderr
        return box

    def isolate(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return self.user.cellbox(*args)

    def put(self, name: str, text: str | bytes, executable: bool = False) -> None:
        path = self.home / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        path.chmod(0o755 if executable else 0o644)
        os.chown(path, self.user.uid, self.user.gid)

    def allow_writing(self, mode: int, only: tuple[str, ...] = ()) -> None:
        """allow_writing_all (0o777) / allow_writing_only(only): the home and its files; names
        outside the home (a FIFO's) are left alone."""
        only = tuple(name for name in only if not name.startswith("/"))
        for name in only:
            if not (self.home / name).exists():
                self.put(name, "")
        for path in (self.home, *self.home.iterdir()):
            path.chmod(mode)
        for name in only:
            (self.home / name).chmod(0o722)

    def command_line(self, command: list[str], *, dirs: tuple[str, ...] = (),
                     full_env: bool = False, fsize: bool = True, stdin: str | None = None,
                     memory_kib: int | None = None, stdout: str | None = None,
                     processes: int = 1, stderr: str | None = None,
                     time: float | None = None) -> list[str]:
        """build_box_options' order, then the command."""
        args = ["--cg", f"--box-id={self.box_id}", "--chdir=/tmp", *self.dirs,
                *(f"--dir={d}" for d in dirs)]
        args += ["--full-env"] if full_env else []
        args += ["--env=HOME=/tmp"]
        args += [f"--fsize={MAX_FILE_SIZE_KIB}"] if fsize else []
        args += [f"--stdin={os.path.join('/tmp', stdin)}"] if stdin else []
        args += [f"--cg-mem={memory_kib}"] if memory_kib else []
        args += [f"--stdout={os.path.join('/tmp', stdout)}"] if stdout else []
        args += [f"--processes={processes}"]
        args += [f"--stderr={os.path.join('/tmp', stderr)}"] if stderr else []
        if time is not None:
            args += [f"--time={time:g}", f"--wall-time={2 * time + 1:g}"]
        args += [f"--meta={self.outer}/run.meta.{self.runs}", "--run", "--", *command]
        self.runs += 1
        return args

    def start(self, args: list[str]) -> subprocess.Popen[bytes]:
        """execute_without_std: stdin a pipe closed at once, stdout and stderr pipes."""
        proc = subprocess.Popen(self.user.command(*args), env=self.user.env(), cwd="/",
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.stdin = None
        return proc

    def meta(self) -> dict[str, str]:
        return parse_meta((self.outer / f"run.meta.{self.runs - 1}").read_text())

    def delete(self) -> None:
        """cleanup(delete=True): chmod everything in the home from inside, then --cleanup."""
        self.isolate(f"--box-id={self.box_id}", "--cg", f"--dir=/tmp={self.home}:rw",
                     "--run", "--", "/bin/chmod", "777", "-R", "/tmp")
        proc = self.isolate(f"--box-id={self.box_id}", "--cg", "--cleanup")
        assert proc.returncode == 0, proc.stderr


def _wait(*procs: subprocess.Popen[bytes]) -> list[int]:
    codes = []
    for proc in procs:
        proc.communicate(timeout=60)
        codes.append(proc.returncode)
    return codes


def _evaluation(box: CmsSandbox, command: list[str], time: float, memory_kib: int,
                fifo_dir: Path | None = None, writable: tuple[str, ...] = (),
                stdin: str | None = None, stdout: str | None = None) -> subprocess.Popen[bytes]:
    """evaluation_step_before_run (its default stdout is stdout.txt)."""
    stdout = stdout or "stdout.txt"
    box.allow_writing(0o755, only=(*writable, "stderr.txt", stdout))
    dirs = (f"/fifo0={fifo_dir}:rw",) if fifo_dir else ()
    return box.start(box.command_line(command, dirs=dirs, stdin=stdin, memory_kib=memory_kib,
                                      stdout=stdout, stderr="stderr.txt", time=time))


def test_compilation_then_batch_evaluation(site: Site) -> None:  # noqa: F811
    user = site.users["member"]
    compiling = CmsSandbox.create(user)
    try:
        compiling.put("batch.c", BATCH_C)
        command = ["/usr/bin/gcc", "-DEVAL", "-std=gnu11", "-O2", "-pipe", "-static", "-s",
                   "-o", "batch", "batch.c", "-lm"]
        proc = compiling.start(compiling.command_line(
            command, dirs=("/etc",), full_env=True, fsize=False,
            memory_kib=COMPILATION_MEMORY_KIB, stdout="compilation_stdout_0.txt",
            processes=COMPILATION_PROCESSES, stderr="compilation_stderr_0.txt",
            time=COMPILATION_TIME))
        assert _wait(proc) == [0], (compiling.home / "compilation_stderr_0.txt").read_text()
        assert "status" not in compiling.meta()
        binary = (compiling.home / "batch").read_bytes()
    finally:
        compiling.delete()
    evaluating = CmsSandbox.create(user)
    try:
        evaluating.put("batch", binary, executable=True)
        evaluating.put("input.txt", "20 22\n")
        proc = _evaluation(evaluating, ["./batch"], 1.0, 262144, stdin="input.txt",
                           stdout="output.txt")
        assert _wait(proc) == [0]
        assert (evaluating.home / "output.txt").read_text() == "42\n"
        meta = evaluating.meta()
        assert "status" not in meta and meta["exitcode"] == "0", meta
    finally:
        evaluating.delete()


@pytest.mark.parametrize("user_io", ["std_io", "fifo_io"])
def test_communication(site: Site, user_io: str) -> None:  # noqa: F811
    user = site.users["member"]
    fifo_dir = Path(tempfile.mkdtemp(dir=user.home))
    os.chown(fifo_dir, user.uid, user.gid)
    for name in ("u0_to_m", "m_to_u0"):
        os.mkfifo(fifo_dir / name)
        os.chown(fifo_dir / name, user.uid, user.gid)
        (fifo_dir / name).chmod(0o666)
    fifo_dir.chmod(0o755)
    manager = CmsSandbox.create(user)
    solution = CmsSandbox.create(user)
    try:
        manager.put("manager", MANAGER, executable=True)
        manager.put("input.txt", "20 22\n")
        solution.put("solution", USER_STD_IO if user_io == "std_io" else USER_FIFO_IO,
                     executable=True)
        mgr = _evaluation(manager, ["./manager", "/fifo0/u0_to_m", "/fifo0/m_to_u0"],
                          max(1 * (1.0 + 1.0), TRUSTED_TIME), TRUSTED_MEMORY_KIB,
                          fifo_dir=fifo_dir, writable=("output.txt",), stdin="input.txt")
        if user_io == "std_io":
            sol = _evaluation(solution, ["./solution"], 1.0, 262144, fifo_dir=fifo_dir,
                              stdin="/fifo0/m_to_u0", stdout="/fifo0/u0_to_m")
        else:
            sol = _evaluation(solution, ["./solution", "/fifo0/m_to_u0", "/fifo0/u0_to_m"],
                              1.0, 262144, fifo_dir=fifo_dir)
        assert _wait(sol, mgr) == [0, 0], (manager.meta(), solution.meta())
        assert (manager.home / "stdout.txt").read_text() == "1.0\n"
        assert (manager.home / "stderr.txt").read_text() == "correct\n"
        for box in (manager, solution):
            assert "status" not in box.meta(), box.meta()
    finally:
        manager.delete()
        solution.delete()
