"""Many runs supervised by one process (``cellbox.run_many``): they run at the same time,
each result is its own box's, and a limit or a failure in one run leaves the others alone."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest

from cellbox import Box, Limits, Status, run_many
from cellbox.errors import BoxStateError
from tests.support.boxes import FIRST_UID, NUM_BOXES

pytestmark = pytest.mark.library

# Polls for the box uids' `sleep` processes and prints the most it saw alive at once.
_WATCH = """
import sys, time
from cellbox.chaos import uid_processes
first, count, until = int(sys.argv[1]), int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
most = 0
print("watching", flush=True)
while time.monotonic() < until and most < int(sys.argv[4]):
    most = max(most, sum("(sleep)" in p for p in uid_processes(first, count)))
    time.sleep(0.01)
print(most)
"""


def test_runs_go_at_the_same_time_and_keep_their_own_results():
    n = 5
    with contextlib.ExitStack() as stack:
        boxes = [stack.enter_context(Box()) for _ in range(n)]
        for i, box in enumerate(boxes):
            box.write_file("me", str(i))
        watch = subprocess.Popen([sys.executable, "-c", _WATCH, str(FIRST_UID),
                                  str(NUM_BOXES), "30", str(n)], stdout=subprocess.PIPE,
                                 text=True)
        assert watch.stdout is not None and watch.stdout.readline() == "watching\n"
        results = run_many([(box, ["/bin/sh", "-c", "sleep 2; cat me"]) for box in boxes],
                           Limits(processes=2, wall_time=20))
        most = int(watch.communicate(timeout=60)[0])
    assert [r.status for r in results] == [Status.OK] * n, results
    assert [r.stdout for r in results] == [str(i).encode() for i in range(n)]
    assert most == n  # all the programs were alive at once


@pytest.mark.cgroup2
def test_one_run_hitting_a_limit_or_failing_leaves_the_others_alone():
    with contextlib.ExitStack() as stack:
        a, b, c = (stack.enter_context(Box()) for _ in range(3))
        results = run_many([(a, ["/bin/sleep", "0.3"]), (b, ["/bin/sleep", "30"]),
                            (c, ["no-such-program"])], Limits(wall_time=1))
        assert [r.status for r in results] == [Status.OK, Status.WALL_TIME_LIMIT,
                                               Status.EXEC_ERROR], results
        assert results[2].exit_code == 127
        assert a.run(["/bin/true"]).status is Status.OK  # the boxes are reusable


def test_a_box_twice_is_refused():
    with Box() as box, pytest.raises(BoxStateError, match="appears twice"):
        run_many([(box, ["/bin/true"]), (box, ["/bin/true"])])
