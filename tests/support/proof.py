"""Running hostile programs with proof of execution: every helper here asserts that the
program started inside the box (it printed the start marker, which C programs get from
started.h and Python programs from a first line added to their code) and that cellbox ran
it (a meta file with a status other than an internal error). A test that passed only
because nothing ran fails here instead. The marker is removed from the output the test sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.support.boxes import PY, InitBox, box_uid

STARTED = b"cellbox-test: started\n"
STARTED_H = Path(__file__).parent / "started.h"
# The first line of every Python program run by run_py (a statement of its own: the program's
# own code, line numbers aside, is unchanged).
PY_STARTED = f"import os as _o; _o.write(2, {STARTED!r}); del _o\n"
SH_STARTED = f"echo '{STARTED.decode().strip()}' >&2; "  # the same for a shell script

Run = tuple[subprocess.CompletedProcess[bytes], dict[str, str]]


def output(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    return proc.stdout + proc.stderr


def started(proc: subprocess.CompletedProcess[bytes], meta: dict[str, str],
            what: str) -> subprocess.CompletedProcess[bytes]:
    """Assert that ``what`` started in the box; returns ``proc`` without the marker."""
    status = meta.get("cellbox-status")
    assert status is not None, (f"{what}: cellbox wrote no meta file, so no run took place: "
                                f"{output(proc)!r}")
    assert status != "INTERNAL_ERROR", (f"{what}: the run failed in cellbox, not in the "
                                        f"program: {meta}, {output(proc)!r}")
    assert STARTED in proc.stdout + proc.stderr, (
        f"{what} never started in the box (no start marker); status {status}: {meta}, "
        f"{output(proc)!r}")
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.replace(STARTED, b""),
                                       proc.stderr.replace(STARTED, b""))


def run_checked(box: InitBox, *argv: str, opts: tuple[str, ...] = (),
                timeout: float = 60) -> Run:
    """--run a program that prints the start marker (a hostile C program, channel.py, or
    Python code through run_py), and prove that it started in the box."""
    proc, meta = box.run(*argv, opts=opts, timeout=timeout)
    return started(proc, meta, " ".join(argv)), meta


def run_py(box: InitBox, code: str, *args: str, opts: tuple[str, ...] = (),
           timeout: float = 60) -> Run:
    """Run a Python program in the box through the CLI (--run, meta file kept apart)."""
    return run_checked(box, PY, "-c", PY_STARTED + code, *args, opts=opts, timeout=timeout)


def run_c(box: InitBox, exe: Path, *args: str, opts: tuple[str, ...] = (),
          timeout: float = 60) -> Run:
    """Copy a compiled hostile program into the box and run it there through the CLI."""
    box.put(exe.name, exe.read_bytes(), 0o755)
    return run_checked(box, f"./{exe.name}", *args, opts=opts, timeout=timeout)


def probe(box: InitBox, code: str, opts: tuple[str, ...] = ()) -> dict:
    """Run Python ``code`` in the box; it must end well and print one JSON value as its last
    line, which is returned."""
    proc, meta = run_py(box, code, opts=opts)
    assert proc.returncode == 0, (proc.stdout, proc.stderr, meta)
    assert meta["cellbox-status"] == "OK", meta
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def parse_results(stdout: bytes) -> dict[str, str]:
    """The ``label=RESULT`` lines (OK or an errno name) of a tests/security/programs/sys_*
    program."""
    return dict(line.split("=", 1) for line in stdout.decode().splitlines() if "=" in line)


def hostile(box: InitBox, sys_program: Callable[[str], Path], name: str, *args: str,
            opts: tuple[str, ...] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """Run sys_NAME in the box, which must end well; return (its label=result lines, the
    meta)."""
    proc, meta = run_c(box, sys_program(name), *args, opts=opts)
    assert meta["cellbox-status"] == "OK", (meta, proc.stdout, proc.stderr)
    return parse_results(proc.stdout), meta


def denied(results: dict[str, str], labels: list[str], errno_name: str = "EPERM") -> None:
    wrong = {k: results.get(k) for k in labels if results.get(k) != errno_name}
    assert not wrong, f"expected {errno_name} from {labels}, got {wrong}"


def compile_c(source: Path, exe: Path, marked: bool) -> Path:
    """gcc, warnings as errors; ``marked``: with the start marker (hostile programs)."""
    marker = ["-include", str(STARTED_H)] if marked else []
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-pthread", *marker, "-o", str(exe),
                    str(source), "-lresolv"], check=True)
    return exe


def public_copy(exe: Path, where: Path) -> Path:
    """A copy of ``exe`` in ``where`` (e.g. canary_dir), which any uid may run."""
    copy = where / exe.name
    shutil.copy(exe, copy)
    copy.chmod(0o755)
    return copy


def run_on_host(argv: list[str], uid: int | None = None, timeout: float = 30
                ) -> subprocess.CompletedProcess[bytes]:
    """Positive control: the same hostile program, outside any box (as ``uid`` if given)."""
    ids = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
    return subprocess.run(argv, capture_output=True, timeout=timeout, **ids)


ATTACK_STARTED = "cellbox-attack-started"  # run_attack's first line, with the uid it ran as


def run_attack(box: InitBox, code: str, *args: str, opts: tuple[str, ...] = (),
               timeout: float = 60) -> str:
    """Run a Python attack that must end well in the box and return its stdout, whose first
    line (printed before the attack) names the uid it ran as: the box's."""
    prelude = f"import os; print({ATTACK_STARTED!r}, os.getuid(), flush=True)\n"
    proc, meta = run_py(box, prelude + code, *args, opts=opts, timeout=timeout)
    out = proc.stdout.decode()
    assert out.startswith(f"{ATTACK_STARTED} {box_uid(box.id)}\n"), (output(proc), meta)
    assert meta.get("exitcode") == "0" and "status" not in meta, (output(proc), meta)
    return out
