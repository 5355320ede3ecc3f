"""A job (what to run) and its outcome, as plain JSON values, and ``execute`` for workers.

Both backends carry the same dicts: the embedded pool pickles them, Celery sends them as
JSON. Bytes travel base64-encoded. ``execute`` runs in a worker process, never in the server.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import multiprocessing.util
import traceback
from dataclasses import dataclass, field
from typing import Any

from cellbox.api import DEFAULT_PATH, Box
from cellbox.errors import CellboxError
from cellbox.judge import Verdict, compile_and_run, run_verdict
from cellbox.languages import COMPILE_LIMITS, get
from cellbox.limits import LIBRARY, SERVICE, Limits
from cellbox.pool import Pool
from cellbox.result import RunResult

DIED_TWICE = "the worker running this submission died twice (killed, or out of memory)"
MAX_ATTEMPTS = 2  # a run whose worker died is retried once


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def fields_of(obj: object) -> dict[str, Any]:
    """A dataclass's fields, shallow: asdict() deep-copies every value, a cost on each
    submission."""
    return dict(vars(obj))


@dataclass(frozen=True)
class Job:
    """Exactly one of ``language`` (a cellbox language name, with ``source``, ``args`` for
    the program, compiler ``options`` and ``files`` beside the source when compiling and
    running), ``command`` (argv run in a box holding ``files``) or ``project`` (Judge0's
    multi-file program: ``files`` bring a ``run`` script, and a ``compile`` script if it
    needs one). ``runs``: language runs only, Judge0's number_of_runs. ``caps``: the admin's
    caps, which bound the compile step too (the submission's options may make a compiler run
    its code). ``limits``: the run's, complete (the front end filled in its defaults); their
    ``processes`` bound commands and multi-file programs, while a language's profile sets its
    own."""

    language: str | None = None
    source: bytes = b""
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict)
    stdin: bytes = b""
    limits: Limits = SERVICE.limits()
    network: bool = False
    options: tuple[str, ...] = ()
    stderr_to_stdout: bool = False
    runs: int = 1
    # An interactive run (language runs only): {"language", "source" (base64), "limits"}, the
    # interactor the program talks to (cellbox.judge.interact)
    interactor: dict[str, Any] | None = None
    project: bool = False
    caps: Limits | None = None

    @property
    def label(self) -> str:
        """What the metrics and records call it: the language, "multi-file" or "command"."""
        return self.language or ("multi-file" if self.project else "command")

    def to_dict(self) -> dict[str, object]:
        d = fields_of(self)
        d["source"], d["stdin"] = b64(self.source), b64(self.stdin)
        d["files"] = {k: b64(v) for k, v in self.files.items()}
        d["command"], d["args"] = list(self.command), list(self.args)
        d["options"] = list(self.options)
        d["limits"] = fields_of(self.limits)
        d["caps"] = fields_of(self.caps) if self.caps else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(language=d.get("language"), source=unb64(d.get("source", "")),
                   args=tuple(d.get("args") or ()), command=tuple(d.get("command") or ()),
                   files={str(k): unb64(v) for k, v in (d.get("files") or {}).items()},
                   stdin=unb64(d.get("stdin", "")), limits=Limits(**d["limits"]),
                   network=bool(d.get("network")), options=tuple(d.get("options") or ()),
                   stderr_to_stdout=bool(d.get("stderr_to_stdout")), runs=int(d.get("runs", 1)),
                   interactor=d.get("interactor"), project=bool(d.get("project")),
                   caps=Limits(**d["caps"]) if d.get("caps") else None)


Submission = tuple[Job, dict[str, object]]  # a job and what its record keeps of the request


@dataclass
class Outcome:
    """What a job gave. ``verdict``: a ``cellbox.judge.Verdict`` value (AC when the run ended
    well: the API layer compares ``expected_output`` itself). ``status``: the RunResult status
    name of the run (None without a run: CE or IE before it)."""

    verdict: str
    status: str | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    compile_output: str = ""
    message: str = ""
    exit_code: int | None = None
    signal: int | None = None
    time: float = 0.0
    wall_time: float = 0.0
    memory: int | None = None  # peak bytes
    processes_limit_hit: bool = False  # the process limit refused a fork or a thread

    def to_dict(self) -> dict[str, object]:
        d = fields_of(self)
        d["stdout"], d["stderr"] = b64(self.stdout), b64(self.stderr)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        return cls(**(d | {"stdout": unb64(d["stdout"]), "stderr": unb64(d["stderr"])}))


def internal_error(message: str) -> Outcome:
    return Outcome(verdict="IE", message=message)


def execute(job: dict[str, Any]) -> dict[str, object]:
    """Run one job (in a single-threaded worker process). Every failure becomes an Internal
    Error outcome with its reason, so a job is never lost to an exception."""
    try:
        return _execute(Job.from_dict(job)).to_dict()
    except CellboxError as e:  # e.g. no free box, a missing toolchain: say why
        return internal_error(str(e)).to_dict()
    except Exception as e:  # a bug: keep the traceback's last line for the operator
        last = traceback.format_exception_only(e)[-1].strip()
        return internal_error(f"internal error: {last}").to_dict()


def _execute(job: Job) -> Outcome:
    if job.command:
        return _run_command(job)
    if job.project:
        return _run_project(job)
    assert job.language is not None
    if job.interactor is not None:
        return _interact(job)
    result = compile_and_run(get(job.language), job.source, job.stdin, _language(job.limits),
                             files=job.files, share_net=job.network, args=job.args,
                             options=job.options, stderr_to_stdout=job.stderr_to_stdout,
                             runs=job.runs, compile_caps=job.caps, pools=warm_pool)
    out = Outcome(verdict=result.verdict.value, compile_output=result.compilation.message)
    if result.run is None:
        return out
    return _with_runs(out, result.runs)


def _language(limits: Limits) -> Limits:
    """A language run's limits: the profile decides its processes (a JVM needs threads), from
    the library's default."""
    return dataclasses.replace(limits, processes=LIBRARY.base.processes)


def _interact(job: Job) -> Outcome:
    from cellbox.judge.interact import interact

    assert job.language is not None and job.interactor is not None
    spec = job.interactor
    result = interact(get(job.language), job.source, get(spec["language"]),
                      unb64(spec["source"]), _language(job.limits),
                      _language(Limits(**spec["limits"])), job.stdin, files=job.files)
    out = Outcome(verdict=result.verdict.value, compile_output=result.compilation.message)
    if result.run is None:
        out.message = result.message
        return out
    out = _with_runs(out, (result.run,))
    out.message = result.message or out.message
    return out


MAX_WARM_ROOTS = 4  # warm boxes a worker keeps, one per root (the last roots it ran in)
_warm: dict[tuple[str, ...], Pool] = {}  # this worker process's warm boxes, by root


def warm_pool(dirs: tuple[str, ...] = ()) -> Pool:
    """The worker's warm box for the root ``dirs`` (--dir rules over the default root), made
    by its first job there: a job runs there without a box's set-up and tear-down, and
    starts clean all the same (cellbox.pool). Beyond MAX_WARM_ROOTS roots, the least used
    lately is closed. All are closed when the process ends: an embedded worker's exit runs
    the finalizer; a Celery worker calls close_warm_pool."""
    pool = _warm.pop(dirs, None)
    if pool is None:
        _close_at_exit()
        if len(_warm) >= MAX_WARM_ROOTS:
            _warm.pop(next(iter(_warm))).__exit__(None, None, None)
        pool = Pool(size=1, dirs=dirs).__enter__()
    _warm[dirs] = pool  # the most recent last
    return pool


@functools.cache
def _close_at_exit() -> None:
    multiprocessing.util.Finalize(None, close_warm_pool, exitpriority=10)


def close_warm_pool() -> None:
    while _warm:
        _warm.popitem()[1].__exit__(None, None, None)


def _run_command(job: Job) -> Outcome:
    if job.network or job.stderr_to_stdout:  # a warm box's network and stdio are fixed
        with Box() as box:
            for name, data in job.files.items():
                box.write_file(name, data)
            run = box.run(list(job.command), job.limits, stdin=job.stdin,
                          share_net=job.network, stderr_to_stdout=job.stderr_to_stdout)
    else:
        run = warm_pool().run(list(job.command), job.limits, files=job.files, stdin=job.stdin)
    verdict = run_verdict(run) or Verdict.AC
    return _with_runs(Outcome(verdict=verdict.value), (run,))


def _run_project(job: Job) -> Outcome:
    """As Judge0 runs a multi-file program: ``bash compile`` under the compile limits when
    the files have that script (its failure is a CE), then ``bash run`` under the job's,
    both in one box, so the run finds what the compile step built."""
    env = {"PATH": DEFAULT_PATH}
    compile_output = ""
    with Box() as box:
        for name, data in job.files.items():
            box.write_file(name, data)
        if "compile" in job.files:
            built = box.run(["/bin/bash", "compile"], COMPILE_LIMITS, env=env,
                            stderr_to_stdout=True)
            compile_output = built.stdout.decode("utf-8", "replace")
            if not built.ok:
                return Outcome(verdict=Verdict.CE.value, compile_output=compile_output
                               or built.message)
        run = box.run(["/bin/bash", "run", *job.args], job.limits, stdin=job.stdin, env=env,
                      share_net=job.network, stderr_to_stdout=job.stderr_to_stdout)
    verdict = run_verdict(run) or Verdict.AC
    return _with_runs(Outcome(verdict=verdict.value, compile_output=compile_output), (run,))


def _with_runs(out: Outcome, runs: tuple[RunResult, ...]) -> Outcome:
    """The last run's outputs and status; time, wall time and memory averaged over the runs
    (as Judge0 reports number_of_runs)."""
    run = runs[-1]
    out.status, out.stdout, out.stderr = run.status.name, run.stdout, run.stderr
    out.message, out.exit_code, out.signal = run.message, run.exit_code, run.signal
    out.processes_limit_hit = any(r.processes_limit_hit for r in runs)
    out.time = sum(r.cpu_time for r in runs) / len(runs)
    out.wall_time = sum(r.wall_time for r in runs) / len(runs)
    peaks = [r.peak_memory for r in runs if r.peak_memory is not None]
    out.memory = sum(peaks) // len(peaks) if peaks else None
    return out
