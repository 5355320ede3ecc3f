"""Interactive runs in the library: two warm boxes joined by pipes, each side with its own
limits and accounting; the run ends cleanly whichever side quits, crashes or stalls."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from cellbox import Limits, Pool, Status
from cellbox.interactive import ended_first, run_interactive

pytestmark = [pytest.mark.problems, pytest.mark.library]

PY = "/usr/bin/python3"
ECHO_TWICE = "import sys\nfor _ in range(2):\n    print(int(input()) * 2, flush=True)\n"


@pytest.fixture
def pools() -> Iterator[tuple[Pool, Pool]]:
    with Pool(1) as a, Pool(1) as b:
        yield a, b


def _run(pools: tuple[Pool, Pool], first: str, second: str, first_wall: float = 3.0,
         second_wall: float = 3.0):  # noqa: ANN202 - a pair of RunResults
    a, b = pools
    return run_interactive(
        a.prepare([PY, "a.py"], Limits(time=2, wall_time=first_wall), files={"a.py": first}),
        b.prepare([PY, "b.py"], Limits(time=2, wall_time=second_wall), files={"b.py": second}))


def test_each_side_talks_to_the_other_and_has_its_own_accounting(pools) -> None:
    asker = ("import sys, time\nfor i in (3, 5):\n    print(i, flush=True)\n"
             "    print('got', input(), file=sys.stderr)\n")
    spinner = ("import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end:"
               "\n    pass\n" + ECHO_TWICE)
    first, second = _run(pools, asker, spinner)
    assert first.status is Status.OK and first.stderr == b"got 6\ngot 10\n"
    assert second.status is Status.OK
    assert second.cpu_time >= 0.25 and first.cpu_time < second.cpu_time  # not shared
    assert first.stdout == second.stdout == b""  # the pipes took them


def test_a_side_that_crashes_gives_the_other_eof(pools) -> None:
    reader = "import sys\ndata = sys.stdin.read()\nsys.exit(43 if data == '1\\n' else 0)\n"
    first, second = _run(pools, "print(1, flush=True)\nraise SystemExit(9)\n", reader)
    assert first.exit_code == 9 and second.exit_code == 43


def test_writing_to_a_side_that_ended_is_no_sigpipe(pools) -> None:
    # The first writes again once the second has ended (its stdin's EOF says so)
    late = ("import sys, time\nprint('hello', flush=True)\nsys.stdin.read()\ntime.sleep(0.3)\n"
            "print('still talking', flush=True)\n")
    first, second = _run(pools, late, "input()\n")
    assert first.status is Status.OK and first.signal != signal.SIGPIPE
    assert second.status is Status.OK
    assert ended_first(second, first) and not ended_first(first, second)


def test_a_side_that_waits_forever_ends_at_its_own_wall_time_limit(pools) -> None:
    first, second = _run(pools, "pass\n", "import time\ntime.sleep(60)\n", second_wall=1.0)
    assert first.status is Status.OK
    assert second.status is Status.WALL_TIME_LIMIT


def test_both_waiting_for_each_other_end_at_their_limits(pools) -> None:
    first, second = _run(pools, "input()\n", "input()\n", first_wall=1.0, second_wall=2.0)
    assert first.status is Status.WALL_TIME_LIMIT
    # the first one's kill closed its end: the second read EOF (Python: EOFError, exit 1)
    assert second.status is Status.RUNTIME_ERROR


def test_no_pipe_end_is_left_open_in_this_process(pools) -> None:
    _run(pools, "print(2, flush=True)\nprint(input())\n", ECHO_TWICE)  # the slots' own fds
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(3):
        _run(pools, "print(2, flush=True)\nprint(input())\n", ECHO_TWICE)
    assert set(os.listdir("/proc/self/fd")) == before
