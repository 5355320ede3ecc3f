"""Checkers: does a program's output answer a test? Built-in comparisons run on the host (they
only read bytes the host holds); a custom checker program runs in a box of its own.

Custom checkers follow testlib's convention: ``checker INPUT OUTPUT ANSWER`` with the three
files in its working directory, and the exit code is the verdict: 0 AC, 1 WA, 2 presentation
error (judged WA), 4 "dirt" (WA), 3 the checker itself failed (IE); anything else, or a
checker that crashes or hits a limit, is IE. Its stdout and stderr become the test's message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from cellbox.errors import UsageError
from cellbox.judge.sandbox import Compilation, compile_source, run_compiled
from cellbox.judge.verdict import Verdict
from cellbox.languages import Language
from cellbox.limits import Limits
from cellbox.result import Status

CHECKER_EXIT = {0: Verdict.AC, 1: Verdict.WA, 2: Verdict.WA, 4: Verdict.WA, 3: Verdict.IE}
CHECKER_MESSAGE_CAP = 1 << 10


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    message: str = ""


class Checker(Protocol):
    def check(self, input: bytes, output: bytes, answer: bytes) -> Check: ...


class TokensChecker:
    """Whitespace-separated tokens must be equal (spacing and line breaks do not matter)."""

    def check(self, input: bytes, output: bytes, answer: bytes) -> Check:
        got, want = output.split(), answer.split()
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            if g != w:
                return Check(Verdict.WA, f"token {i + 1}: expected {_show(w)}, got {_show(g)}")
        if len(got) != len(want):
            return Check(Verdict.WA, f"expected {len(want)} tokens, got {len(got)}")
        return Check(Verdict.AC)


class ExactChecker:
    """The output must equal the answer byte for byte."""

    def check(self, input: bytes, output: bytes, answer: bytes) -> Check:
        if output == answer:
            return Check(Verdict.AC)
        at = next((i for i, (a, b) in enumerate(zip(output, answer, strict=False)) if a != b),
                  min(len(output), len(answer)))
        return Check(Verdict.WA, f"outputs differ from byte {at} "
                                 f"({len(output)} bytes, expected {len(answer)})")


@dataclass(frozen=True)
class FloatChecker:
    """Tokens must be equal, except that numbers may differ by ``abs_eps`` or by ``rel_eps``
    times the expected value (either is enough). Tokens that are not numbers compare exactly."""

    abs_eps: float = 1e-6
    rel_eps: float = 1e-6

    def __post_init__(self) -> None:
        for v in (self.abs_eps, self.rel_eps):
            if not math.isfinite(v) or v < 0:
                raise UsageError(f"Epsilon {v!r} must be a non-negative finite number")

    def check(self, input: bytes, output: bytes, answer: bytes) -> Check:
        got, want = output.split(), answer.split()
        if len(got) != len(want):
            return Check(Verdict.WA, f"expected {len(want)} tokens, got {len(got)}")
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if not self._same(g, w):
                return Check(Verdict.WA, f"token {i + 1}: expected {_show(w)}, got {_show(g)}")
        return Check(Verdict.AC)

    def _same(self, got: bytes, want: bytes) -> bool:
        try:
            g, w = float(got), float(want)
        except ValueError:
            return got == want
        if not (math.isfinite(g) and math.isfinite(w)):
            return got == want
        return abs(g - w) <= self.abs_eps or abs(g - w) <= self.rel_eps * abs(w)


class ProgramChecker:
    """A checker program, compiled once in its own box and run in a fresh box per test."""

    def __init__(self, lang: Language, source: bytes, limits: Limits) -> None:
        self.limits = limits
        self.compilation: Compilation = compile_source(lang, source)
        if not self.compilation.ok:
            raise UsageError(f"The checker does not compile:\n{self.compilation.message}")

    def check(self, input: bytes, output: bytes, answer: bytes) -> Check:
        files = {"input.txt": input, "output.txt": output, "answer.txt": answer}
        r = run_compiled(self.compilation, self.limits, files=files, args=list(files))
        message = (r.stdout + r.stderr).decode("utf-8", "replace").strip()
        message = message[:CHECKER_MESSAGE_CAP]
        if r.exit_code is None or r.status not in (Status.OK, Status.RUNTIME_ERROR):
            return Check(Verdict.IE, f"checker failed: {r.message} {message}".strip())
        return Check(CHECKER_EXIT.get(r.exit_code, Verdict.IE), message)


def _show(token: bytes) -> str:
    text = token.decode("utf-8", "replace")
    return repr(text if len(text) <= 40 else text[:40] + "...")
