"""A Judge0 CE 1.13-compatible API: the same paths, field names, units, status ids and
language ids, so Judge0 clients work unchanged. Units as Judge0: seconds, and KB for memory
and file sizes; ``time`` and ``wall_time`` are strings in answers, as Judge0 sends them."""

from __future__ import annotations

import base64
import binascii
import shlex
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cellbox.judge.sandbox import title
from cellbox.languages import judge0_table, languages
from cellbox.server import archive, callbacks
from cellbox.server.config import ServiceConfig
from cellbox.server.errors import ApiError
from cellbox.server.jobs import Job, JobLimits, Outcome
from cellbox.server.native import MAX_OPTIONS, caps, check_batch, check_job, iso
from cellbox.server.records import Record

VERSION = "1.13.1"  # the Judge0 CE version whose API this follows
KB = 1024
STATUSES = {
    1: "In Queue", 2: "Processing", 3: "Accepted", 4: "Wrong Answer",
    5: "Time Limit Exceeded", 6: "Compilation Error", 7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)", 9: "Runtime Error (SIGFPE)", 10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)", 12: "Runtime Error (Other)", 13: "Internal Error",
    14: "Exec Format Error",
}
SIGNAL_STATUS = {11: 7, 25: 8, 8: 9, 6: 10}  # SIGSEGV, SIGXFSZ, SIGFPE, SIGABRT
# Judge0's defaults (its judge0.conf), used when a submission leaves a limit out.
DEFAULTS = {"cpu_time_limit": 5.0, "cpu_extra_time": 1.0, "wall_time_limit": 10.0,
            "memory_limit": 128000, "stack_limit": 64000, "max_processes_and_or_threads": 60,
            "max_file_size": 1024, "number_of_runs": 1}
DEFAULT_FIELDS = ("token", "stdout", "time", "memory", "stderr", "compile_output", "message",
                  "status")
ALL_FIELDS = ("source_code", "language_id", "stdin", "expected_output", "stdout",
              "status_id", "created_at", "finished_at", "time", "memory", "stderr", "token",
              "number_of_runs", "cpu_time_limit", "cpu_extra_time", "wall_time_limit",
              "memory_limit", "stack_limit", "max_processes_and_or_threads",
              "enable_per_process_and_thread_time_limit",
              "enable_per_process_and_thread_memory_limit", "max_file_size", "compile_output",
              "exit_code", "exit_signal", "message", "wall_time", "compiler_options",
              "command_line_arguments", "redirect_stderr_to_stdout", "callback_url",
              "additional_files", "enable_network", "status", "language")
TEXT_FIELDS = ("source_code", "stdin", "expected_output")  # base64 in and out when asked
PER_PAGE = 20  # GET /submissions' default page size, as Judge0
# The job's limits by their Judge0 names (values in the messages are in bytes and seconds).
LIMIT_NAMES = {"time": "cpu_time_limit", "wall_time": "wall_time_limit",
               "memory": "memory_limit (bytes)", "file_size": "max_file_size (bytes)"}


class SubmissionIn(BaseModel):
    # Judge0 ignores keys it does not know; wrong types are still errors.
    model_config = ConfigDict(extra="ignore", strict=True)

    source_code: str
    language_id: int
    stdin: str | None = None
    expected_output: str | None = None
    cpu_time_limit: float | None = Field(None, gt=0)
    cpu_extra_time: float | None = Field(None, ge=0)
    wall_time_limit: float | None = Field(None, gt=0)
    memory_limit: int | None = Field(None, gt=0, description="KB")
    stack_limit: int | None = Field(None, gt=0, description="KB")
    max_processes_and_or_threads: int | None = Field(None, ge=1)
    enable_per_process_and_thread_time_limit: bool | None = None
    enable_per_process_and_thread_memory_limit: bool | None = None
    max_file_size: int | None = Field(None, gt=0, description="KB")
    redirect_stderr_to_stdout: bool | None = None
    enable_network: bool | None = None
    number_of_runs: int | None = Field(None, ge=1)
    compiler_options: str | None = Field(None, max_length=MAX_OPTIONS)
    command_line_arguments: str | None = Field(None, max_length=MAX_OPTIONS)
    additional_files: str | None = None
    callback_url: str | None = None


class BatchIn(BaseModel):
    model_config = ConfigDict(strict=True)
    submissions: list[SubmissionIn]


def _decode(text: str | None, b64: bool, what: str) -> bytes | None:
    if text is None:
        return None
    if not b64:
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, f"{what} is not valid base64") from None


def _encode(data: bytes | None, b64: bool) -> str | None:
    if data is None:
        return None
    return base64.b64encode(data).decode() if b64 else data.decode("utf-8", "replace")


def to_job(sub: SubmissionIn, b64: bool, cfg: ServiceConfig) -> tuple[Job, dict[str, object]]:
    """The job, and the echo the record keeps (the submission as Judge0 would store it)."""
    answered, unsupported = judge0_table()
    if sub.language_id in unsupported:
        u = unsupported[sub.language_id]
        raise ApiError(422, f"language with id {u.id} ({u.name}) is not supported here: "
                       f"{u.reason}")
    if sub.language_id not in answered:
        raise ApiError(422, f"language with id {sub.language_id} doesn't exist; cellbox "
                       f"has {', '.join(map(str, answered))}")
    texts = {k: _decode(getattr(sub, k), b64, k) for k in TEXT_FIELDS}
    if sub.number_of_runs is not None and sub.number_of_runs > cfg.max_runs:
        raise ApiError(422, f"number_of_runs={sub.number_of_runs} is above this server's "
                       f"maximum {cfg.max_runs}")
    if sub.callback_url:
        if not cfg.enable_callbacks:
            raise ApiError(422, "callback_url: setting callback is not allowed (the admin "
                           "turned enable_callbacks off)")
        callbacks.check_url(sub.callback_url, cfg.callback_hosts)
    limits = {k: getattr(sub, k) if getattr(sub, k) is not None else v
              for k, v in DEFAULTS.items()}
    job = Job(language=answered[sub.language_id].name, source=texts["source_code"] or b"",
              args=_split(sub.command_line_arguments, "command_line_arguments"),
              stdin=texts["stdin"] or b"", files=_files(sub.additional_files, cfg),
              limits=JobLimits(time=float(limits["cpu_time_limit"]),
                               wall_time=float(limits["wall_time_limit"]),
                               memory=int(limits["memory_limit"]) * KB,
                               file_size=int(limits["max_file_size"]) * KB),
              network=bool(sub.enable_network),
              options=_split(sub.compiler_options, "compiler_options"),
              stderr_to_stdout=bool(sub.redirect_stderr_to_stdout),
              runs=int(limits["number_of_runs"]), caps=caps(cfg))
    check_job(job, cfg, LIMIT_NAMES)
    echo: dict[str, object] = {k: v for k, v in sub.model_dump().items() if k not in TEXT_FIELDS}
    echo |= limits
    echo |= {k: base64.b64encode(v).decode() if v is not None else None
             for k, v in texts.items()}  # kept as base64 whatever the request's encoding
    return job, echo


def _split(text: str | None, what: str) -> tuple[str, ...]:
    """Split as Judge0's shell would; the words become argv elements (no shell runs)."""
    try:
        return tuple(shlex.split(text or ""))
    except ValueError as e:
        raise ApiError(422, f"{what}: {e}") from None


def _files(text: str | None, cfg: ServiceConfig) -> dict[str, bytes]:
    """additional_files: a zip archive, base64-encoded whatever base64_encoded says (as
    Judge0)."""
    if not text:
        return {}
    if len(text) > cfg.max_files_bytes * 4 // 3 + 4:
        raise ApiError(413, f"additional_files is over {cfg.max_files_bytes} bytes")
    data = _decode(text, True, "additional_files")
    assert data is not None
    return archive.extract(data, cfg.max_files, cfg.max_files_bytes)


def _strip(text: bytes) -> bytes:
    """Judge0's comparison: trailing spaces of each line and surrounding blank lines ignored."""
    return b"\n".join(line.rstrip() for line in text.split(b"\n")).strip()


def status_id(rec: Record) -> int:
    if rec.outcome is None:
        return 2 if rec.state == "running" else 1
    o = Outcome.from_dict(rec.outcome)
    if o.verdict == "AC":
        expected = rec.request.get("expected_output")
        if expected is None or _strip(base64.b64decode(str(expected))) == _strip(o.stdout):
            return 3
        return 4
    if o.verdict == "IE":
        return 14 if "exec format" in o.message.lower() else 13
    simple = {"CE": 6, "TLE": 5, "OLE": 8}  # OLE: isolate's fsize limit, SIGXFSZ in Judge0
    if o.verdict in simple:
        return simple[o.verdict]
    if o.signal is not None:  # RE or MLE
        return SIGNAL_STATUS.get(o.signal, 12)
    return 11 if o.exit_code else 12


def to_json(rec: Record, b64: bool, fields: tuple[str, ...]) -> dict[str, object]:
    sid = status_id(rec)
    o = Outcome.from_dict(rec.outcome) if rec.outcome else None
    full: dict[str, object] = dict(rec.request)
    for k in TEXT_FIELDS:
        v = rec.request.get(k)
        full[k] = _encode(base64.b64decode(str(v)), b64) if v is not None else None
    lang_id = rec.request.get("language_id")
    full |= {"token": rec.id, "status_id": sid, "status": {"id": sid, "description": STATUSES[sid]},
             "created_at": iso(rec.created), "finished_at": iso(rec.finished),
             "language": {"id": lang_id, "name": title(languages()[rec.label])},
             "stdout": None, "stderr": None, "compile_output": None, "message": None,
             "time": None, "wall_time": None, "memory": None, "exit_code": None,
             "exit_signal": None}
    if o is not None:
        full |= {"stdout": _encode(o.stdout or None, b64),
                 "stderr": _encode(o.stderr or None, b64),
                 "compile_output": _encode(o.compile_output.encode() or None, b64),
                 "message": _encode(o.message.encode() or None, b64),
                 "exit_code": o.exit_code, "exit_signal": o.signal,
                 "time": f"{o.time:.3f}" if o.status else None,
                 "wall_time": f"{o.wall_time:.3f}" if o.status else None,
                 "memory": o.memory // KB if o.memory is not None else None}
    return {k: full.get(k) for k in fields}


def _fields(text: str | None) -> tuple[str, ...]:
    if text is None:
        return DEFAULT_FIELDS
    if text.strip() == "*":
        return ALL_FIELDS
    wanted = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in wanted if f not in ALL_FIELDS]
    if unknown:
        raise ApiError(422, f"invalid field(s): {', '.join(unknown)}")
    return wanted


B64 = Annotated[bool, Query(description="source_code, stdin, expected_output and the "
                                        "outputs in base64")]


def router() -> APIRouter:
    r = APIRouter(tags=["judge0"])

    @r.post("/submissions", status_code=201)
    async def create(sub: SubmissionIn, request: Request, base64_encoded: B64 = False,
                     wait: bool = False, fields: str | None = None) -> dict[str, object]:
        svc = request.app.state.service
        wanted = _fields(fields)
        job, echo = to_job(sub, base64_encoded, svc.cfg)
        rec = await svc.submit(job, echo)
        if not wait:
            return {"token": rec.id}
        return to_json(await svc.wait(rec.id), base64_encoded, wanted)

    @r.post("/submissions/batch", status_code=201)
    async def create_batch(batch: BatchIn, request: Request,
                           base64_encoded: B64 = False) -> list[dict[str, object]]:
        svc = request.app.state.service
        check_batch(len(batch.submissions), svc.cfg)
        out: list[dict[str, object]] = []
        for sub in batch.submissions:  # as Judge0: each item is accepted or has its error
            try:
                job, echo = to_job(sub, base64_encoded, svc.cfg)
                out.append({"token": (await svc.submit(job, echo)).id})
            except ApiError as e:
                if e.status in (429, 503):
                    raise
                out.append({"error": e.message})
        return out

    @r.get("/submissions/batch")
    async def get_batch(request: Request, tokens: str, base64_encoded: B64 = False,
                        fields: str | None = None) -> dict[str, object]:
        svc = request.app.state.service
        wanted = _fields(fields)
        ids = [t for t in tokens.split(",") if t]
        check_batch(len(ids), svc.cfg, "tokens")
        out = []
        for id in ids:
            rec = await svc.get(id)
            out.append(to_json(rec, base64_encoded, wanted) if rec and rec.judge0 else None)
        return {"submissions": out}

    @r.get("/submissions")
    async def index(request: Request, base64_encoded: B64 = False, fields: str | None = None,
                    page: Annotated[int, Query(ge=1)] = 1,
                    per_page: Annotated[int, Query(ge=1, le=1000)] = PER_PAGE
                    ) -> dict[str, object]:
        """Judge0's paginated list, newest first; needs an admin token (X-Auth-User)."""
        svc = request.app.state.service
        svc.authorise_admin(request)
        wanted = _fields(fields)
        recs, total = await svc.page((page - 1) * per_page, per_page)
        pages = -(-total // per_page)
        return {"submissions": [to_json(rec, base64_encoded, wanted) for rec in recs],
                "meta": {"current_page": page, "next_page": page + 1 if page < pages else None,
                         "prev_page": page - 1 if page > 1 else None, "total_pages": pages,
                         "total_count": total}}

    @r.get("/submissions/{token}")
    async def get(token: str, request: Request, base64_encoded: B64 = False,
                  fields: str | None = None) -> dict[str, object]:
        return to_json(await _judge0_record(request, token), base64_encoded, _fields(fields))

    @r.delete("/submissions/{token}")
    async def delete(token: str, request: Request,
                     fields: str | None = None) -> dict[str, object]:
        """As Judge0: an admin token, enable_submission_delete, and a finished submission;
        answers what was deleted, base64-encoded (whatever base64_encoded says)."""
        svc = request.app.state.service
        svc.authorise_admin(request)
        if not svc.cfg.enable_submission_delete:
            raise ApiError(400, "delete not allowed: the admin has not set "
                           "enable_submission_delete")
        rec = await _judge0_record(request, token)
        if rec.state != "done":
            sid = status_id(rec)
            raise ApiError(400, f"submission cannot be deleted because its status is {sid} "
                           f"({STATUSES[sid]})")
        await svc.delete(token)
        return to_json(rec, True, _fields(fields))

    # Plain functions: FastAPI runs them in its thread pool, since a title's version is
    # detected by running the toolchain in a box (once per process).
    @r.get("/languages")
    def langs() -> list[dict[str, object]]:
        return [{"id": i, "name": title(lang)} for i, lang in judge0_table()[0].items()]

    @r.get("/languages/{id}")
    def lang(id: int) -> dict[str, object]:
        answered, unsupported = judge0_table()
        if id in unsupported:
            u = unsupported[id]
            raise ApiError(404, f"language with id {id} ({u.name}) is not supported here: "
                           f"{u.reason}")
        if id not in answered:
            raise ApiError(404, f"language with id {id} doesn't exist")
        lang = answered[id]
        return {"id": id, "name": title(lang), "is_archived": False,
                "source_file": lang.source, "compile_cmd": " ".join(lang.compile) or None,
                "run_cmd": " ".join(lang.run)}

    @r.get("/statuses")
    async def statuses() -> list[dict[str, object]]:
        return [{"id": i, "description": d} for i, d in STATUSES.items()]

    @r.get("/about")
    async def about() -> dict[str, str]:
        return {"version": VERSION, "homepage": "docs/service.md",
                "source_code": "cellbox", "maintainer": "cellbox"}

    @r.get("/config_info")
    def config_info(request: Request) -> JSONResponse:
        return JSONResponse(_config_info(request.app.state.service.cfg))

    return r


async def _judge0_record(request: Request, token: str) -> Record:
    rec = await request.app.state.service.get(token)
    if rec is None or not rec.judge0:  # a native id is not a token
        raise ApiError(404, f"no submission with token {token!r}")
    return rec


def _config_info(cfg: ServiceConfig) -> dict[str, object]:
    return {
        "maintenance_mode": False, "enable_wait_result": True,
        "enable_compiler_options": True,
        "allowed_languages_for_compile_options": [
            title(lang) for lang in languages().values() if lang.compiler_options],
        "enable_command_line_arguments": True,
        "enable_submission_delete": cfg.enable_submission_delete,
        "enable_callbacks": cfg.enable_callbacks, "callbacks_max_tries": callbacks.CALLBACK_TRIES,
        "callbacks_timeout": callbacks.CALLBACK_TIMEOUT, "enable_additional_files": True,
        "max_queue_size": cfg.max_queue,
        "cpu_time_limit": DEFAULTS["cpu_time_limit"], "max_cpu_time_limit": cfg.max_time,
        "cpu_extra_time": DEFAULTS["cpu_extra_time"], "max_cpu_extra_time": 0,
        "wall_time_limit": DEFAULTS["wall_time_limit"],
        "max_wall_time_limit": cfg.max_wall_time,
        "memory_limit": DEFAULTS["memory_limit"], "max_memory_limit": cfg.max_memory // KB,
        "stack_limit": DEFAULTS["stack_limit"], "max_stack_limit": DEFAULTS["stack_limit"],
        "max_processes_and_or_threads": DEFAULTS["max_processes_and_or_threads"],
        "max_max_processes_and_or_threads": cfg.max_processes,
        # Accepted, but cellbox limits the whole run either way (docs/service.md).
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": True,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": True,
        "max_file_size": DEFAULTS["max_file_size"], "max_max_file_size": cfg.max_file_size // KB,
        "number_of_runs": 1, "max_number_of_runs": cfg.max_runs,
        "max_extract_size": cfg.max_files_bytes // KB,
        "redirect_stderr_to_stdout": False, "enable_batched_submissions": True,
        "max_submission_batch_size": cfg.max_batch, "allow_enable_network": cfg.allow_network,
        "enable_network": False,
    }
