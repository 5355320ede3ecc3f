"""The one limits model: each front end's defaults (``cellbox.limits``), their table in
docs/library.md, and the conversion of each wire format into ``Limits``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cellbox.errors import UsageError
from cellbox.judge import judging_limits
from cellbox.limits import (
    COMMAND,
    JUDGE,
    JUDGE0,
    KIB,
    LIBRARY,
    MIB,
    SERVICE,
    Defaults,
    Limits,
)
from cellbox.server.config import ServiceConfig
from cellbox.server.jobs import Job
from cellbox.server.native import LimitsIn, to_limits

pytestmark = pytest.mark.unit

LIBRARY_DOC = Path(__file__).parent.parent / "docs" / "library.md"
COLUMNS = {"LIBRARY": LIBRARY, "COMMAND": COMMAND, "JUDGE": JUDGE, "SERVICE": SERVICE,
           "JUDGE0": JUDGE0}
ROWS = ("time", "wall_time", "memory", "output", "file_size", "processes", "open_files")


def _cell(defaults: Defaults, name: str) -> str:
    """A default as the docs write it."""
    value = getattr(defaults.base, name)
    if name == "wall_time" and value is None and defaults.wall_from_time:
        return "2 × time + 1 s"
    if value is None:
        return "none"
    if name in ("time", "wall_time"):
        return f"{value:g} s"
    if name in ("memory", "output", "file_size"):
        return f"{value // MIB} MiB" if value % MIB == 0 else f"{value // KIB} KiB"
    return str(value)


def test_the_documented_defaults_are_the_code_s() -> None:
    text = LIBRARY_DOC.read_text()
    table = text[text.index("### Limits and their defaults"):].split("\n\n")[2]
    lines = [line.strip("|").split("|") for line in table.splitlines()]
    heads = [re.findall(r"`(\w+)`", h)[0] for h in lines[0][1:]]
    assert heads == list(COLUMNS)
    documented = {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]]
                  for cells in lines[2:]}
    assert list(documented) == list(ROWS)
    for name, cells in documented.items():
        assert cells == [_cell(d, name) for d in COLUMNS.values()], name


def test_a_given_limit_wins_and_none_is_not_given() -> None:
    limits = SERVICE.limits(time=3.0, memory=None)
    assert (limits.time, limits.memory) == (3.0, SERVICE.base.memory)
    assert limits.output == SERVICE.base.output and limits.processes == SERVICE.base.processes


def test_wall_time_follows_the_time_where_the_front_end_says_so() -> None:
    assert JUDGE.limits(time=2.0).wall_time == 5.0
    assert JUDGE.limits(time=2.0, wall_time=7.0).wall_time == 7.0
    assert JUDGE0.limits(time=2.0).wall_time == JUDGE0.base.wall_time  # Judge0's own 10 s
    assert LIBRARY.limits(time=2.0).wall_time is None  # the library: no limit unless asked


def test_the_defaults_keep_limits_checks() -> None:
    with pytest.raises(UsageError, match="processes"):
        SERVICE.limits(processes=0)


def test_the_judge_refuses_an_unbounded_run() -> None:
    assert judging_limits(None) == JUDGE.limits()
    for unbounded in (Limits(time=1), Limits(time=1, wall_time=3, memory=MIB),
                      JUDGE.limits(wall_time=0.0)):
        with pytest.raises(UsageError, match="JUDGE.limits"):
            judging_limits(unbounded)


def test_the_native_api_fills_in_service_defaults_under_the_caps() -> None:
    cfg = ServiceConfig(max_processes=8)
    assert to_limits(LimitsIn(), cfg) == SERVICE.limits(processes=8)  # default lowered to the cap
    given = to_limits(LimitsIn(time=2.0, processes=20), cfg)  # named: checked later, kept here
    assert (given.time, given.wall_time, given.processes) == (2.0, 5.0, 20)
    assert to_limits(LimitsIn(), ServiceConfig(max_processes=100)) == SERVICE.limits()


def test_a_job_carries_its_limits_through_json() -> None:
    job = Job(command=("/bin/true",), limits=SERVICE.limits(time=2.5), caps=Limits(time=9.0))
    back = Job.from_dict(job.to_dict())
    assert back == job and back.limits.wall_time == 6.0
