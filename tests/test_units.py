"""The systemd units: valid for systemd, and every cellbox command they start parses with the
real parser, so a renamed option cannot leave a unit behind."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cellbox.cli import subcommands
from tests.support.skips import unless

pytestmark = pytest.mark.operations

UNITS = Path(__file__).parent.parent / "systemd"
INSTALLED = "/usr/local/bin/cellbox"  # where the units expect the launcher (see their header)
# systemd < 254 does not know this key and ignores it; the units say so.
KNOWN_WARNING = "Unknown key 'DelegateSubgroup'"


def _cellbox_argvs(unit: Path) -> list[list[str]]:
    """The cellbox command lines a unit runs: ExecStart= with $CELLBOX_SERVE_OPTS replaced
    by each example value its comments give."""
    text = unit.read_text()
    examples = re.findall(r"^#\s+CELLBOX_SERVE_OPTS=(.*)$", text, re.M) or [""]
    argvs = []
    for line in re.findall(r"^ExecStart=(.*)$", text, re.M):
        argv = shlex.split(line)
        if argv[0] != INSTALLED:
            continue
        for opts in examples:
            argvs.append([a for arg in argv[1:]
                          for a in (shlex.split(opts) if arg == "$CELLBOX_SERVE_OPTS" else [arg])])
    return argvs


@pytest.mark.unit
def test_serve_unit_runs_cellbox_serve_with_real_options() -> None:
    argvs = _cellbox_argvs(UNITS / "cellbox-serve.service")
    assert argvs and all(argv[0] == "serve" for argv in argvs)
    for argv in argvs:
        _, parser = subcommands.resolve(argv[0])
        parser().parse_args(argv[1:])  # raises UsageError on an option that does not exist


@pytest.mark.unit
def test_serve_unit_runs_as_root_with_delegation() -> None:
    text = (UNITS / "cellbox-serve.service").read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["User"] == "root" and settings["Delegate"] == "yes"
    assert settings["KillMode"] == "control-group"
    # Each of these would give the service a mount namespace (or forbid namespaces): boxes'
    # mounts would be invisible to the host, or no box could start.
    for key in ("ProtectSystem", "PrivateTmp", "ProtectHome", "ReadWritePaths",
                "RestrictNamespaces", "MemoryDenyWriteExecute", "PrivateDevices"):
        assert key not in settings, key


@unless(shutil.which("systemd-analyze") is not None, "systemd-analyze (a host without systemd)")
def test_units_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this checkout's launcher.
    launcher = Path(sys.executable).parent / "cellbox"
    units = [*UNITS.glob("*.service"), *UNITS.glob("*.socket")]
    for unit in units:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, str(launcher)))
    proc = subprocess.run(["systemd-analyze", "verify",
                           *sorted(str(tmp_path / unit.name) for unit in units)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and KNOWN_WARNING not in line]
    assert proc.returncode == 0 and not problems, problems


@pytest.mark.unit
def test_keeperd_unit_runs_cellbox_keeperd_with_real_options() -> None:
    argvs = _cellbox_argvs(UNITS / "cellbox-keeperd.service")
    assert argvs == [["keeperd"]]
    _, parser = subcommands.resolve("keeperd")
    parser().parse_args(argvs[0][1:])
