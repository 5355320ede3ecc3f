"""Helpers for the seccomp, privilege, /proc, /dev and terminal tests (issue 5).

Hostile C programs live in ``programs/sys_*.c``. Each attempt prints ``label=RESULT`` (OK or
an errno name), which ``hostile`` returns as a dict, so that a test asserts each denial and
then, separately, that nothing changed where it matters (the host, another box, a later run).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "programs"
PY = "/usr/bin/python3"


@pytest.fixture(scope="session")
def sys_program(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Compile programs/sys_NAME.c once per session; returns NAME -> executable."""
    out = tmp_path_factory.mktemp("sys-bin")
    cache: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in cache:
            exe = out / name
            subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-o", str(exe),
                            str(PROGRAMS / f"{name}.c")], check=True)
            cache[name] = exe
        return cache[name]

    return build


def parse_results(stdout: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.decode().splitlines() if "=" in line)


def hostile(box, sys_program: Callable[[str], Path], name: str, *args: str,  # noqa: ANN001
            opts: tuple[str, ...] = ()) -> tuple[dict[str, str], dict[str, str]]:
    """Copy sys_NAME into the box, run it, return (its label=result lines, the meta)."""
    shutil.copy(sys_program(name), box.work / name)
    proc, meta = box.run(f"./{name}", *args, opts=opts)
    assert meta.get("cellbox-status") == "OK", (meta, proc.stdout, proc.stderr)
    return parse_results(proc.stdout), meta


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """The cellbox command line, for what the box fixture does not cover (bad usage)."""
    return subprocess.run([sys.executable, "-m", "cellbox", *args], capture_output=True,
                          timeout=timeout)


def denied(results: dict[str, str], labels: list[str], errno_name: str = "EPERM") -> None:
    wrong = {k: results.get(k) for k in labels if results.get(k) != errno_name}
    assert not wrong, f"expected {errno_name} from {labels}, got {wrong}"
