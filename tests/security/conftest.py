"""Registers the attack suite's fixtures: canaries, canary processes and cgroups, loopback
listeners (tests/support/hostile.py)."""

from tests.support.hostile import (  # noqa: F401 - registered here
    canary,
    canary_cgroup,
    canary_dir,
    canary_process,
    listeners,
)
