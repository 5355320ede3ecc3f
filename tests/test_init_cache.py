"""The cache of built box inits: building one deletes the other sources' builds, except a
build that a live process may still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cellbox.boxinit import cache

pytestmark = pytest.mark.operations

HOLD = "import sys; from cellbox.boxinit import cache; cache.hold(sys.argv[1]); print('held', " \
       "flush=True); sys.stdin.read()"
BUILD = "import sys, cellbox.boxinit as b; b.CACHE_DIR = sys.argv[1]; print(b.binary())"


def test_a_build_prunes_stale_builds_but_not_one_in_use(tmp_path: Path) -> None:
    builds = tmp_path / "cache"
    builds.mkdir(mode=0o755)
    stale, held = builds / "init-0000000000000000", builds / "init-1111111111111111"
    for old in (stale, held):
        old.write_bytes(b"an old build")
        old.chmod(0o755)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(held)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        built = Path(subprocess.run([sys.executable, "-c", BUILD, str(builds)],
                                    capture_output=True, text=True, check=True).stdout.strip())
        assert built.parent == builds and built.name.startswith("boxinit-")
        assert sorted(os.listdir(builds)) == sorted([".lock", held.name, built.name])
    finally:
        holder.communicate("")
    # once nobody holds it, the next build step deletes it; the current build stays
    assert cache.prune(str(builds), ("boxinit-", "init-"), built.name) == [held.name]
    assert sorted(os.listdir(builds)) == [".lock", built.name]


def test_hold_of_a_pruned_build_raises(tmp_path: Path) -> None:
    """hold() after prune() removed the file (the race a running build step can lose) says
    so, and binary() then builds again."""
    build = tmp_path / "init-2222222222222222"
    build.write_bytes(b"x")
    assert cache.prune(str(tmp_path), "init-", keep="") == [build.name]
    with pytest.raises(FileNotFoundError):
        cache.hold(str(build))
