"""Registers the suite's fixtures (tests/support/fixtures.py) and its rules: without root only
the tests of pure code (marker ``unit``) run, the rest are skipped saying so; any skip whose
reason is not that the machine lacks something fails the session."""

from __future__ import annotations

import pytest

from tests.support.fixtures import (  # noqa: F401 - registered here
    box,
    box2,
    c_program,
    host_dir,
    long_lived_boxes,
    progs,
    sys_program,
    system,
    test_config,
)
from tests.support.rootless import user_env  # noqa: F401 - registered here
from tests.support.skips import NEEDS_ROOT, allowed, is_root

_unexpected_skips: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if is_root():
        return
    for item in items:
        if not item.get_closest_marker("unit"):
            item.add_marker(pytest.mark.skip(reason=NEEDS_ROOT))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2]
        if not allowed(reason):
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _unexpected_skips and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's reporter
    if _unexpected_skips:
        terminalreporter.section("unexpected skips (the session fails)", red=True)
        terminalreporter.write_line("A test may skip only when this machine lacks something "
                                    "(tests/support/skips.py); these did for another reason:")
        for line in _unexpected_skips:
            terminalreporter.write_line(f"  {line}")
