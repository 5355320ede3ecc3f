"""cellbox's own API, under /v1: models and their conversion to jobs and back."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from cellbox.errors import UsageError
from cellbox.judge import TokensChecker
from cellbox.judge.sandbox import title
from cellbox.languages import languages
from cellbox.limits import SERVICE, Limits
from cellbox.server.config import ServiceConfig
from cellbox.server.errors import ApiError
from cellbox.server.jobs import Job, Outcome
from cellbox.server.records import Record

MAX_OPTIONS = 512  # characters of compiler options (Judge0's cap on its string)
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")  # plain names at the box's top


class Strict(BaseModel):
    # Wrong types are errors, not coerced ("1" is not 1); unknown keys are errors too.
    model_config = ConfigDict(extra="forbid", strict=True)


class LimitsIn(Strict):
    """The wire format of limits; what a request leaves out is ``cellbox.limits.SERVICE``'s
    (to_limits)."""

    time: float | None = Field(None, gt=0, description="CPU seconds")
    wall_time: float | None = Field(None, gt=0, description="seconds; default 2 x time + 1")
    memory: int | None = Field(None, gt=0, description="bytes, every process of the run")
    output: int | None = Field(None, gt=0, description="bytes of stdout (and stderr) kept")
    file_size: int | None = Field(None, gt=0, description="largest file written, bytes")
    processes: int | None = Field(None, ge=1,
                                  description="commands only: processes and threads at once")


class InteractorIn(Strict):
    """The program's interactor: it reads the program's stdout and writes its stdin."""

    language: str = Field(description="a name from GET /v1/languages")
    source: str = Field(description="in the request's encoding")
    limits: LimitsIn = Field(default_factory=lambda: LimitsIn.model_validate({}))


class RunIn(Strict):
    """A language and a source, or a command; ``files`` are put beside the source (or in
    the command's box)."""

    language: str | None = Field(None, description="a name from GET /v1/languages")
    source: str | None = None
    args: list[str] = Field([], description="the program's arguments (with language)")
    command: list[str] | None = Field(None, description="argv, run in a box of its own")
    files: dict[str, str] = {}
    stdin: str = ""
    expected_output: str | None = Field(None, description="tokens compared: AC or WA")
    encoding: Literal["utf-8", "base64"] = Field(
        "utf-8", description="of source, files, stdin, expected_output and of the outputs")
    limits: LimitsIn = Field(default_factory=lambda: LimitsIn.model_validate({}))
    network: bool = False
    compiler_options: list[str] = Field([], description="argv elements put before the "
                                        "source file in the compile command (c, cpp, java, "
                                        "rust)")
    stderr_to_stdout: bool = Field(False, description="stderr into stdout, in order written")
    interactor: InteractorIn | None = Field(
        None, description="an interactive run: the interactor gets stdin as testdata.in and "
        "runs as INTERACTOR testdata.in testdata.ans feedback/, talking to the program; it "
        "exits 42 (AC) or 43 (WA), anything else is IE (docs/problems.md)")


class BatchIn(Strict):
    submissions: list[RunIn]


class SubmissionOut(BaseModel):
    id: str
    state: str  # queued | running | done
    language: str
    verdict: str | None = None  # AC WA TLE MLE RE OLE CE IE, once done
    status: str | None = None  # the run's status (OK, RUNTIME_ERROR, TIME_LIMIT, ...)
    stdout: str | None = None
    stderr: str | None = None
    compile_output: str | None = None
    message: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    time: float | None = None
    wall_time: float | None = None
    memory: int | None = None
    processes_limit_hit: bool | None = None  # the process limit refused a fork or a thread
    created_at: str
    finished_at: str | None = None


def decode(text: str, encoding: str, what: str) -> bytes:
    if encoding == "utf-8":
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, f"{what} is not valid base64") from None


def encode(data: bytes, encoding: str) -> str:
    return base64.b64encode(data).decode() if encoding == "base64" else data.decode(
        "utf-8", "replace")


def check_batch(size: int, cfg: ServiceConfig, what: str = "submissions") -> None:
    if size == 0:
        raise ApiError(422, f"a batch needs at least one of its {what}")
    if size > cfg.max_batch:
        raise ApiError(413, f"{size} {what}; a batch takes at most {cfg.max_batch}")


def check_limits(lim: Limits, cfg: ServiceConfig, names: Mapping[str, str] = {}) -> None:
    """Limits beyond the admin's caps are refused, never silently lowered. ``names``: what
    the request called them (Judge0's field names)."""
    caps = {"time": cfg.max_time, "wall_time": cfg.max_wall_time, "memory": cfg.max_memory,
            "output": cfg.max_output, "file_size": cfg.max_file_size,
            "processes": cfg.max_processes}
    for name, cap in caps.items():
        value = getattr(lim, name)
        if value is not None and value > cap:
            raise ApiError(422, f"limit {names.get(name, name)}={value} is above this "
                           f"server's maximum {cap}")


def caps(cfg: ServiceConfig) -> Limits:
    """The admin's caps as limits: they bound a job's compile step as well as its run."""
    return Limits(time=cfg.max_time, wall_time=cfg.max_wall_time, memory=cfg.max_memory,
                  output=cfg.max_output, file_size=cfg.max_file_size,
                  processes=cfg.max_processes)


def check_job(job: Job, cfg: ServiceConfig, names: Mapping[str, str] = {}) -> None:
    """The admin's caps on sizes (413) and limits (422, ``names`` as in check_limits), and
    the network policy (403)."""
    if job.language is not None and job.language not in languages():
        raise ApiError(422, f"unknown language {job.language!r}; known: "
                       f"{', '.join(languages())}")
    lang = languages().get(job.language or "")
    if job.options and (lang is None or not lang.compiler_options):
        what = f"{lang.titled(None)}'s compile step ({' '.join(lang.compile) or 'none'})" if lang \
            else "a command"
        raise ApiError(422, "compiler_options: setting compiler options is only allowed for "
                       f"compiled languages; {what} takes none")
    if sum(len(o) for o in job.options) > MAX_OPTIONS:
        raise ApiError(422, f"compiler_options: at most {MAX_OPTIONS} characters")
    if lang is not None:
        try:
            lang.check_options(job.options)
        except UsageError as e:
            raise ApiError(422, f"compiler_options: {e}") from None
    if len(job.source) > cfg.max_source_bytes:
        raise ApiError(413, f"the source is {len(job.source)} bytes; the most is "
                       f"{cfg.max_source_bytes}")
    if len(job.files) > cfg.max_files:
        raise ApiError(413, f"{len(job.files)} files; the most is {cfg.max_files}")
    if sum(len(v) for v in job.files.values()) > cfg.max_files_bytes:
        raise ApiError(413, f"the files are over {cfg.max_files_bytes} bytes in all")
    if len(job.stdin) > cfg.max_stdin_bytes:
        raise ApiError(413, f"stdin is over {cfg.max_stdin_bytes} bytes")
    if job.network and not cfg.allow_network:
        raise ApiError(403, "this server gives submissions no network (allow_network is off)")
    check_limits(job.limits, cfg, names)


def to_limits(given: LimitsIn, cfg: ServiceConfig) -> Limits:
    """The run's limits: ``given``, the rest ``SERVICE``'s; a default process limit above
    the admin's cap is lowered to it (one the request names is checked against the cap)."""
    limits = SERVICE.limits(**given.model_dump())
    over = limits.processes is None or limits.processes > cfg.max_processes
    if given.processes is None and over:
        return replace(limits, processes=cfg.max_processes)
    return limits


def to_job(req: RunIn, cfg: ServiceConfig) -> Job:
    if (req.language is None) == (req.command is None):
        raise ApiError(422, "give either language (with source) or command, not both")
    if req.language is not None and req.source is None:
        raise ApiError(422, "a language needs a source")
    if req.command is not None and (not req.command or not all(req.command)):
        raise ApiError(422, "command must be a non-empty list of non-empty strings")
    if req.command is not None and (req.args or req.compiler_options):
        raise ApiError(422, "args and compiler_options go with a language; a command carries "
                       "its own")
    bad = [n for n in req.files if not FILE_NAME.match(n)]
    if bad:
        raise ApiError(422, f"file name {bad[0]!r} is not a plain name (letters, digits, "
                       "'.', '_', '-'; at most 100)")
    enc = req.encoding
    interactor = None
    if req.interactor is not None:
        if req.language is None or req.expected_output is not None or req.stderr_to_stdout:
            raise ApiError(422, "an interactor goes with a language, and without "
                           "expected_output or stderr_to_stdout (the interactor judges)")
        inter = req.interactor
        if inter.language not in languages():
            raise ApiError(422, f"unknown interactor language {inter.language!r}")
        source = decode(inter.source, enc, "interactor source")
        if len(source) > cfg.max_source_bytes:
            raise ApiError(413, f"the interactor is {len(source)} bytes; the most is "
                           f"{cfg.max_source_bytes}")
        inter_limits = to_limits(inter.limits, cfg)
        check_limits(inter_limits, cfg)
        interactor = {"language": inter.language, "source": base64.b64encode(source).decode(),
                      "limits": asdict(inter_limits)}
    job = Job(language=req.language, source=decode(req.source or "", enc, "source"),
              args=tuple(req.args), command=tuple(req.command or ()),
              files={n: decode(v, enc, f"file {n}") for n, v in req.files.items()},
              stdin=decode(req.stdin, enc, "stdin"),
              limits=to_limits(req.limits, cfg), network=req.network,
              options=tuple(req.compiler_options), stderr_to_stdout=req.stderr_to_stdout,
              interactor=interactor, caps=caps(cfg))
    check_job(job, cfg)
    return job


def request_echo(req: RunIn) -> dict[str, object]:
    """What a record keeps of the request, to finish the answer when it is done."""
    return {"encoding": req.encoding, "expected_output": req.expected_output}


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def to_out(rec: Record) -> SubmissionOut:
    out = SubmissionOut(id=rec.id, state=rec.state, language=rec.label,
                        created_at=iso(rec.created) or "", finished_at=iso(rec.finished))
    if rec.outcome is None:
        return out
    o = Outcome.from_dict(rec.outcome)
    enc = str(rec.request.get("encoding", "utf-8"))
    verdict = o.verdict
    expected = rec.request.get("expected_output")
    if verdict == "AC" and isinstance(expected, str):
        answer = decode(expected, enc, "expected_output")
        verdict = TokensChecker().check(b"", o.stdout, answer).verdict.value
    out.verdict, out.status, out.message = verdict, o.status, o.message
    out.stdout, out.stderr = encode(o.stdout, enc), encode(o.stderr, enc)
    out.compile_output = o.compile_output
    out.exit_code, out.signal, out.memory = o.exit_code, o.signal, o.memory
    out.processes_limit_hit = o.processes_limit_hit
    out.time, out.wall_time = round(o.time, 3), round(o.wall_time, 3)
    return out


def router() -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["native"])

    @r.post("/runs", response_model=SubmissionOut)
    async def run(req: RunIn, request: Request) -> SubmissionOut:
        """Run and wait for the result (at most the server's wait_timeout)."""
        svc = request.app.state.service
        rec = await svc.submit(to_job(req, svc.cfg), request_echo(req), request)
        return to_out(await svc.wait(rec.id))

    @r.post("/submissions", status_code=201)
    async def submit(req: RunIn, request: Request) -> dict[str, str]:
        svc = request.app.state.service
        rec = await svc.submit(to_job(req, svc.cfg), request_echo(req), request)
        return {"id": rec.id}

    @r.post("/submissions/batch", status_code=201)
    async def batch(req: BatchIn, request: Request) -> list[dict[str, str]]:
        svc = request.app.state.service
        check_batch(len(req.submissions), svc.cfg)
        jobs = [(to_job(s, svc.cfg), request_echo(s)) for s in req.submissions]  # all valid
        return [{"id": rec.id} for rec in await svc.submit_all(jobs, request)]

    @r.get("/submissions/{id}", response_model=SubmissionOut)
    async def get(id: str, request: Request) -> SubmissionOut:
        rec = await request.app.state.service.get(id, request)
        if rec is None or rec.judge0:  # a Judge0 token is not a native id
            raise ApiError(404, f"no submission {id!r}")
        return to_out(rec)

    @r.get("/languages")
    def langs() -> list[dict[str, object]]:  # in the thread pool: title() may run a box
        return [{"name": lang.name, "title": title(lang), "source": lang.source,
                 "compiled": bool(lang.compile), "judge0_ids": list(lang.judge0_ids)}
                for lang in languages().values()]

    return r
