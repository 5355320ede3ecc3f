"""One interactive run of a source against an interactor source, for callers without a problem
package (the service's native API): both are compiled in boxes of their own, then run at once
in two warm boxes joined by pipes (``cellbox.interactive``).

The interactor follows the problem package format's output validator protocol: it runs as
``INTERACTOR testdata.in testdata.ans feedback/`` with the given input and answer files, talks
to the program over its stdin and stdout, and exits 42 (accepted) or 43 (wrong answer);
anything else is IE. The verdict follows the format's rules (``validators.interactive_verdict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cellbox.interactive import ended_first, run_interactive
from cellbox.judge.sandbox import RUN_DIRS, Compilation, compile_source, run_environment
from cellbox.judge.validators import (
    Validation,
    feedback_of,
    interactive_verdict,
    outcome,
    prepare_validator,
)
from cellbox.judge.verdict import Verdict, run_verdict
from cellbox.languages import Language
from cellbox.limits import Limits
from cellbox.pool import Pool
from cellbox.result import RunResult

FEEDBACK_CAP = 1 << 20  # bytes of the interactor's feedback files kept


@dataclass
class Interaction:
    verdict: Verdict
    compilation: Compilation
    run: RunResult | None = None  # the program's (None: it did not compile)
    interactor: RunResult | None = None
    validation: Validation | None = None
    message: str = ""


def interact(lang: Language, source: bytes, interactor: Language, interactor_source: bytes,
             limits: Limits, interactor_limits: Limits, data: bytes = b"",
             answer: bytes = b"", files: Mapping[str, bytes] = {}) -> Interaction:
    """``limits``: the program's; ``interactor_limits``: the interactor's (its wall-clock
    limit should exceed the program's, so that it outlives a stalled program and judges it);
    ``data`` and ``answer``: its testdata.in and testdata.ans; ``files``: beside the program's
    source."""
    compilation = compile_source(lang, source, files=files)
    if compilation.verdict is not None:
        return Interaction(compilation.verdict, compilation)
    built = compile_source(interactor, interactor_source)
    if not built.ok:
        return Interaction(Verdict.IE, compilation,
                           message=f"the interactor does not compile: {built.message}")
    run_limits = lang.run_limits(limits)
    with Pool(1, dirs=lang.dirs + RUN_DIRS) as programs, \
            Pool(1, dirs=interactor.dirs + RUN_DIRS) as interactors:
        program = programs.prepare(lang.run_argv(run_limits), run_limits,
                                   env=run_environment(lang, run_limits))
        compilation.copy_into(program.box)
        other = prepare_validator(interactors, built, interactor_limits, data, answer)
        run, irun = run_interactive(program, other)
        validation = outcome(irun, feedback_of(other.box, FEEDBACK_CAP), False, False)
    verdict, _ = interactive_verdict(run_verdict(run, lang), validation,
                                     ended_first(irun, run))
    return Interaction(verdict, compilation, run, irun, validation, validation.message)
