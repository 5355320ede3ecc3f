"""Test directories: every ``NAME.in`` pairs with ``NAME.out`` in the same directory.

Tests run in natural order of NAME (digits compare as numbers: 2 before 10, then by text).
Other files are ignored; an ``.in`` without its ``.out`` (or the reverse) is an error, since
it is almost always a typo.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from cellbox.errors import UsageError


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class, despite its name

    name: str
    input: bytes
    answer: bytes


def _natural(name: str) -> list[tuple[int, int | str]]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name) if p]


def load_tests(directory: str) -> list[TestCase]:
    if not os.path.isdir(directory):
        raise UsageError(f"Tests directory {directory!r} does not exist (or is not a "
                         "directory); it should hold NAME.in / NAME.out pairs")
    names = os.listdir(directory)
    ins = {n[:-3] for n in names if n.endswith(".in")}
    outs = {n[:-4] for n in names if n.endswith(".out")}
    if ins ^ outs:
        lonely = sorted(f"{n}.in" if n in ins else f"{n}.out" for n in ins ^ outs)
        raise UsageError(f"Tests directory {directory!r}: {', '.join(lonely)} has no pair; "
                         "every NAME.in needs a NAME.out and the reverse")
    if not ins:
        raise UsageError(f"Tests directory {directory!r} has no NAME.in / NAME.out pairs")
    tests = []
    for name in sorted(ins, key=_natural):
        with open(os.path.join(directory, f"{name}.in"), "rb") as f:
            data = f.read()
        with open(os.path.join(directory, f"{name}.out"), "rb") as f:
            tests.append(TestCase(name, data, f.read()))
    return tests
