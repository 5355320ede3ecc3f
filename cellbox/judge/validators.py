"""Output validators of problem packages.

The default validator compares on the host (it only reads bytes the host holds), with the
format's options: ``case_sensitive``, ``space_change_sensitive``, ``float_tolerance E``,
``float_relative_tolerance E``, ``float_absolute_tolerance E``. Without them, tokens are
compared case-insensitively and any run of whitespace equals any other. With a float
tolerance, a token of the answer that is a decimal number accepts any number within the
absolute or the relative tolerance (either is enough).

A custom validator is built once in a box of its own and runs, per test, in a warm box of its
own (with ``validation_time``, ``validation_memory`` and ``validation_output``): ``VALIDATOR
input answer feedback/ [flags]`` with the team's output on stdin (or, interactive, the
submission's stdout on stdin and its stdout to the submission). Exit 42 accepts, 43 rejects;
any other end (another code, a crash, a limit) is the judges' error (IE). What it writes in
``feedback/`` (``judgemessage.txt``, ``teammessage.txt``, ``score.txt``, ``nextpass.in``)
comes back in the Validation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cellbox.api import Box
from cellbox.errors import UsageError
from cellbox.judge.sandbox import Compilation, run_environment
from cellbox.judge.verdict import Verdict
from cellbox.limits import Limits, wall_for
from cellbox.pool import Pool, WarmRun
from cellbox.result import RunResult, Status

EXIT_AC, EXIT_WA = 42, 43
FEEDBACK = "feedback"
MESSAGE_CAP = 16 << 10  # characters of a message kept
FLOAT = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Validation:
    verdict: Verdict  # AC, WA or IE
    message: str = ""  # why (for IE: what went wrong with the validator)
    judge_message: str = ""
    team_message: str = ""
    score: float | None = None  # from score.txt
    nextpass: bytes | None = None  # nextpass.in (multi-pass)
    feedback: dict[str, bytes] = field(default_factory=dict)  # every file, for the next pass


class DefaultValidator:
    def __init__(self, flags: tuple[str, ...] | list[str]) -> None:
        self.case_sensitive = self.space_sensitive = False
        self.abs_tol = self.rel_tol = -1.0
        args = list(flags)
        while args:
            flag = args.pop(0)
            if flag == "case_sensitive":
                self.case_sensitive = True
            elif flag == "space_change_sensitive":
                self.space_sensitive = True
            elif flag in ("float_tolerance", "float_absolute_tolerance",
                          "float_relative_tolerance"):
                value = _tolerance(flag, args.pop(0) if args else "")
                if flag != "float_relative_tolerance":
                    self.abs_tol = value
                if flag != "float_absolute_tolerance":
                    self.rel_tol = value
            else:
                raise UsageError(f"Unknown default validator flag {flag!r}; it takes "
                                 "case_sensitive, space_change_sensitive, float_tolerance E, "
                                 "float_relative_tolerance E, float_absolute_tolerance E")
        self.floats = self.abs_tol >= 0 or self.rel_tol >= 0

    def validate(self, output: bytes, answer: bytes) -> Validation:
        if self.space_sensitive:
            got, want = re.findall(rb"\s+|\S+", output), re.findall(rb"\s+|\S+", answer)
        else:
            got, want = output.split(), answer.split()
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            problem = self._differ(g, w)
            if problem:
                return _wrong(f"token {i + 1}: {problem}")
        if len(got) < len(want):
            return _wrong(f"the output ends early: expected {_show(want[len(got)])} next")
        if len(got) > len(want):
            return _wrong(f"trailing output: {_show(got[len(want)])}")
        return Validation(Verdict.AC)

    def _differ(self, got: bytes, want: bytes) -> str:
        if want[:1].isspace() or got[:1].isspace():
            return "" if got == want else "whitespace differs"
        if self.floats and FLOAT.fullmatch(want):
            if not FLOAT.fullmatch(got):
                return f"expected a number, got {_show(got)}"
            g, w = float(got), float(want)
            if not (abs(g - w) <= self.abs_tol or abs(g - w) <= self.rel_tol * abs(w)):
                return f"expected {_show(want)}, got {_show(got)} (too far)"
            return ""
        same = got == want if self.case_sensitive else got.lower() == want.lower()
        return "" if same else f"expected {_show(want)}, got {_show(got)}"


def _tolerance(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"Default validator flag {flag} needs a non-negative number, not "
                         f"{text!r}")
    return value


def _wrong(message: str) -> Validation:
    return Validation(Verdict.WA, message, judge_message=message)


def _show(token: bytes) -> str:
    text = token.decode("utf-8", "replace")
    return repr(text if len(text) <= 40 else text[:40] + "...")


def validator_limits(time: float, memory: int, output: int, wall: float | None = None) -> Limits:
    return Limits(time=time, wall_time=wall if wall is not None else wall_for(time),
                  memory=memory, output=output, file_size=output)


def prepare_validator(pool: Pool, compilation: Compilation, limits: Limits, data: bytes,
                      answer: bytes, flags: Sequence[str] = (), stdin: bytes = b"",
                      feedback: Mapping[str, bytes] = {}) -> WarmRun:
    """A validator's run made ready in ``pool``: ``VALIDATOR testdata.in testdata.ans
    feedback/ [flags]``, with ``feedback/`` holding ``feedback`` (an earlier pass's)."""
    lang = compilation.language
    limits = lang.run_limits(limits)
    files = {"testdata.in": data, "testdata.ans": answer,
             **{f"{FEEDBACK}/{n}": d for n, d in feedback.items()}}
    argv = [*lang.run_argv(limits), "testdata.in", "testdata.ans", f"{FEEDBACK}/", *flags]
    run = pool.prepare(argv, limits, files=files, stdin=stdin, env=run_environment(lang, limits))
    run.box.make_dir(FEEDBACK)
    compilation.copy_into(run.box)
    return run


def feedback_of(box: Box, cap: int) -> dict[str, bytes]:
    """The files a validator left in ``feedback/`` of its box, ``cap`` bytes in all."""
    files: dict[str, bytes] = {}
    for name in box.list_files(FEEDBACK):
        files[name] = box.read_file(f"{FEEDBACK}/{name}", max(cap, 0))
        cap -= len(files[name])
    return files


def interactive_verdict(submission: Verdict | None, validation: Validation,
                        validator_first: bool) -> tuple[Verdict, bool]:
    """An interactive run's verdict from the submission's own (None: it ended well) and the
    validator's, and whether the validator decided it (then no time limit overrides it): its
    failure (IE) first, then its rejection if it ended first (WA), then the submission's
    failure, then the validator's verdict."""
    if validation.verdict is Verdict.IE or (validation.verdict is Verdict.WA
                                           and validator_first):
        return validation.verdict, True
    return submission or validation.verdict, False


def outcome(run: RunResult, feedback: dict[str, bytes], custom_score: bool,
            multi_pass: bool) -> Validation:
    """A custom validator's run and feedback files as a Validation."""
    text = {n: d.decode("utf-8", "replace")[:MESSAGE_CAP] for n, d in feedback.items()}
    v = Validation(Verdict.IE, judge_message=text.get("judgemessage.txt", ""),
                   team_message=text.get("teammessage.txt", ""), feedback=feedback)
    if run.status not in (Status.OK, Status.RUNTIME_ERROR) or run.exit_code not in (EXIT_AC,
                                                                                    EXIT_WA):
        v.message = ("the output validator failed: "
                     f"{run.message or f'exited with {run.exit_code}'}; it must exit 42 or 43")
        return v
    nextpass = feedback.get("nextpass.in")
    if run.exit_code == EXIT_WA:
        if nextpass is not None or "score.txt" in feedback:
            v.message = "the output validator rejected, yet wrote nextpass.in or score.txt"
            return v
        v.verdict, v.message = Verdict.WA, v.judge_message.strip()[:200]
        return v
    v.nextpass = nextpass if multi_pass else None
    if "score.txt" in feedback:
        if not custom_score:
            v.message = "the output validator wrote score.txt, but the problem is not scored"
            return v
        try:
            v.score = float(feedback["score.txt"].split()[0])
        except (ValueError, IndexError):
            v.message = f"score.txt holds no number: {text['score.txt'][:40]!r}"
            return v
    v.verdict = Verdict.AC
    return v
