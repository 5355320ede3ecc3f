"""Compile artifacts reach the run's box by streaming: the host never holds one whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from cellbox.judge.builds import new_build_dir, remove_build_dir
from cellbox.judge.sandbox import compile_source
from cellbox.languages import get

pytestmark = [pytest.mark.judge, pytest.mark.security]

# A "compiler" that leaves a 200 MiB sparse artifact (no data blocks at all): reading it whole
# would cost the host process 200 MiB and more.
CHILD = r"""
import json, resource
from cellbox.judge.sandbox import compile_source, run_compiled
from cellbox.languages import Language
from cellbox.limits import Limits
lang = Language(name="sparse", title="sparse", version=("true",), source="main.sh",
                compile=("/usr/bin/truncate", "-s", "200M", "main"), run=("./main",),
                artifacts=("main",))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
c = compile_source(lang, b"")
r = run_compiled(c, Limits(time=1, wall_time=3, memory=64 << 20))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"ok": c.ok, "grown_kib": grown, "run": r.status.name}))
"""


def test_a_sparse_200mib_artifact_is_never_read_whole_into_the_host() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ok"]
    assert got["grown_kib"] < 64 << 10, got  # far below the artifact's 200 MiB


# Compiles a real program, says where its artifacts are, then waits to be killed.
HOLDER = r"""
import sys, time
from cellbox.judge.sandbox import compile_source
from cellbox.languages import get
c = compile_source(get("c"), b"int main(void) { return 0; }\n")
assert c.ok, c.message
print(c.directory, flush=True)
time.sleep(600)
"""


def _holder(tmp_path) -> tuple[subprocess.Popen[str], str]:  # noqa: ANN001 - pytest's path
    child = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True,
                             env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def _aged(path: str) -> None:
    """As if made long ago: past the grace a new directory has to be claimed."""
    os.utime(path, (1, 1))


def test_killed_compiler_leaves_no_build_directory(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A process killed while it holds compile artifacts (a service worker killed mid-job)
    leaves its build directory; the next compilation removes it, and never one whose
    process is alive."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead, dead_dir = _holder(tmp_path)
    alive, alive_dir = _holder(tmp_path)
    try:
        dead.kill()
        dead.wait()
        assert os.path.isdir(dead_dir) and os.listdir(dead_dir), "the artifacts were not kept"
        _aged(dead_dir)
        _aged(alive_dir)
        c = compile_source(get("c"), b"int main(void) { return 0; }\n")
        assert c.ok, c.message
        assert not os.path.exists(dead_dir)
        assert os.listdir(alive_dir), "a live process's artifacts were removed"
    finally:
        alive.kill()
        alive.wait()
    _aged(alive_dir)
    remove_build_dir(new_build_dir())
    assert not os.path.exists(alive_dir), "a killed process's artifacts were kept"
