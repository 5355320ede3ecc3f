"""Skips: a test may skip only when the machine lacks something it needs, and says what.
The suite fails on any other skip (tests/conftest.py), so that a regression never turns into
a quiet skip."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

LACKS = "this machine lacks "
# For every test not marked `unit`, when the suite is not run as root.
NEEDS_ROOT = ("needs root: system tests create namespaces, mounts and cgroups (run as root, "
              "or `-m unit` for the tests of pure code)")
ALLOWED = (LACKS, NEEDS_ROOT)


def lacks(what: str) -> NoReturn:
    """Skip the test: this machine lacks ``what`` (say what provides it)."""
    pytest.skip(LACKS + what)


def unless(condition: bool, what: str) -> pytest.MarkDecorator:
    """A mark that skips the test unless ``condition``: else this machine lacks ``what``."""
    return pytest.mark.skipif(not condition, reason=LACKS + what)


def is_root() -> bool:
    return os.geteuid() == 0


def allowed(reason: str) -> bool:
    return reason.removeprefix("Skipped: ").startswith(ALLOWED)
