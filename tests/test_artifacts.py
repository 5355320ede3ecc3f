"""Compile artifacts reach the run's box by streaming: the host never holds one whole."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
