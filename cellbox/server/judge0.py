"""A Judge0 CE 1.13.1-compatible API: the same paths, field names, units, formats, status ids,
language ids and error bodies, so Judge0 clients work unchanged. Units as Judge0: seconds,
and KB for memory and file sizes. Formats as Judge0's serializer writes them: Judge0's
decimal columns (``time``, ``wall_time`` and the time limits) are strings, timestamps are
``2024-05-01T12:00:00.123Z``, base64 has a line break every 60 characters. The service's
metadata endpoints (/about, /config_info, /statistics, ...) are in ``judge0_info``."""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from cellbox.judge.sandbox import title
from cellbox.languages import judge0_table
from cellbox.limits import JUDGE0, Limits
from cellbox.server import archive
from cellbox.server.config import ServiceConfig, is_loopback
from cellbox.server.errors import ApiError, field_errors
from cellbox.server.jobs import Job, Outcome, Submission
from cellbox.server.native import MAX_OPTIONS, caps, check_job
from cellbox.server.records import Record

VERSION = "1.13.1"  # the Judge0 CE version whose API this follows
KB = 1024
PROJECT_ID, PROJECT_NAME = 89, "Multi-file program"  # additional_files with compile/run scripts
STATUSES = {
    1: "In Queue", 2: "Processing", 3: "Accepted", 4: "Wrong Answer",
    5: "Time Limit Exceeded", 6: "Compilation Error", 7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)", 9: "Runtime Error (SIGFPE)", 10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)", 12: "Runtime Error (Other)", 13: "Internal Error",
    14: "Exec Format Error",
}
SIGNAL_STATUS = {11: 7, 25: 8, 8: 9, 6: 10}  # SIGSEGV, SIGXFSZ, SIGFPE, SIGABRT
# Judge0's defaults (its judge0.conf) of the fields that are not limits cellbox applies: they
# are echoed. Those of the limits are cellbox.limits.JUDGE0's.
ECHOED_DEFAULTS = {"cpu_extra_time": 1.0, "stack_limit": 64000, "number_of_runs": 1}
KB_FIELDS = ("memory_limit", "max_file_size")
MAX_CPU_EXTRA_TIME, MAX_STACK_LIMIT = 5.0, 128000  # Judge0's caps; cellbox ignores both fields
DEFAULT_FIELDS = ("token", "time", "memory", "stdout", "stderr", "compile_output", "message",
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
DECIMAL_FIELDS = ("cpu_time_limit", "cpu_extra_time", "wall_time_limit")  # strings, as Judge0
PER_PAGE = 20  # GET /submissions' default page size, as Judge0
MAX_PER_PAGE = 1000
LIMIT_NAMES = {"time": "cpu_time_limit", "wall_time": "wall_time_limit",
               "memory": "memory_limit (bytes)", "file_size": "max_file_size (bytes)"}
CALLBACK_TRIES = 3  # Judge0's CALLBACKS_MAX_TRIES
CALLBACK_TIMEOUT = 5.0  # seconds per try, Judge0's CALLBACKS_TIMEOUT
MAX_URL = 2048
NOT_UTF8 = ("some attributes for this submission cannot be converted to UTF-8, use "
            "base64_encoded=true query parameter")


class SubmissionIn(BaseModel):
    # As Judge0 (Rails): keys it does not know are ignored, and numbers and flags are read
    # as Rails casts them ("71" and 71.0 are 71, "true" is true); other types are errors.
    # The checks of values, with Judge0's messages, are in ``_check``.
    model_config = ConfigDict(extra="ignore")

    source_code: str | None = None
    language_id: int | None = None
    stdin: str | None = None
    expected_output: str | None = None
    cpu_time_limit: float | None = None
    cpu_extra_time: float | None = None
    wall_time_limit: float | None = None
    memory_limit: int | None = None
    stack_limit: int | None = None
    max_processes_and_or_threads: int | None = None
    enable_per_process_and_thread_time_limit: bool | None = None
    enable_per_process_and_thread_memory_limit: bool | None = None
    max_file_size: int | None = None
    redirect_stderr_to_stdout: bool | None = None
    enable_network: bool | None = None
    number_of_runs: int | None = None
    compiler_options: str | None = None
    command_line_arguments: str | None = None
    additional_files: str | None = None
    callback_url: str | None = None


class BatchIn(BaseModel):
    submissions: list[SubmissionIn]


# -- formats ----------------------------------------------------------------------------------

def b64_lines(data: bytes) -> str:
    """Base64 as Judge0 writes it (Ruby's encode64): a line break after every 60 characters
    and at the end."""
    text = base64.b64encode(data).decode()
    return "".join(text[i:i + 60] + "\n" for i in range(0, len(text), 60))


def b64_read(text: str, what: str) -> bytes:
    """Strict base64, line breaks allowed (as Judge0 writes it)."""
    try:
        return base64.b64decode(re.sub(r"[\r\n]", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise field_errors({what: ["is not valid base64"]}) from None


def timestamp(t: float | None) -> str | None:
    """Judge0's time format: UTC, milliseconds, 'Z'."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def decimal(x: float | None) -> str | None:
    """A number as Judge0 writes its decimal columns: a string, at least one decimal."""
    if x is None:
        return None
    text = f"{x:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _text(data: bytes | None, b64: bool) -> str | None:
    """An output or stored text as Judge0 answers it: None when empty; UnicodeDecodeError
    when it is not UTF-8 and base64 was not asked for (the caller answers 400)."""
    if not data:
        return None
    return b64_lines(data) if b64 else data.decode("utf-8")


# -- submissions in ---------------------------------------------------------------------------

def _bounds(cfg: ServiceConfig) -> dict[str, tuple[float, bool, float]]:
    """Field: (low, low allowed, high) as Judge0 validates them, with cellbox's caps."""
    return {"number_of_runs": (0, False, cfg.max_runs),
            "cpu_time_limit": (0, False, cfg.max_time),
            "cpu_extra_time": (0, True, MAX_CPU_EXTRA_TIME),
            "wall_time_limit": (1, True, cfg.max_wall_time),
            "memory_limit": (2048, True, cfg.max_memory // KB),
            "stack_limit": (0, True, MAX_STACK_LIMIT),
            "max_processes_and_or_threads": (0, False, cfg.max_processes),
            "max_file_size": (0, False, cfg.max_file_size // KB)}


def _limit_fields(lim: Limits) -> dict[str, float]:
    """Limits in Judge0's fields and units (KB), those that are set."""
    values = {"cpu_time_limit": lim.time, "wall_time_limit": lim.wall_time,
              "memory_limit": lim.memory, "max_file_size": lim.file_size,
              "max_processes_and_or_threads": lim.processes}
    return {k: v // KB if k in KB_FIELDS else v for k, v in values.items() if v is not None}


def defaults(cfg: ServiceConfig) -> dict[str, float]:
    """Judge0's defaults, each lowered to this server's cap where the admin set it lower (a
    default over its cap would refuse every submission that leaves the field out)."""
    bounds = _bounds(cfg)
    return {k: min(v, bounds[k][2]) if k in bounds else v
            for k, v in (_limit_fields(JUDGE0.base) | ECHOED_DEFAULTS).items()}


def _number(x: float) -> str:
    return str(x) if isinstance(x, float) else str(int(x))


def _check(sub: SubmissionIn, cfg: ServiceConfig) -> None:
    """Judge0's validations, with its messages; every invalid field is reported at once."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    answered, unsupported = judge0_table()
    project = sub.language_id == PROJECT_ID
    if sub.language_id is None:
        add("language_id", "can't be blank")
    elif sub.language_id in unsupported:
        u = unsupported[sub.language_id]
        add("language_id", f"language with id {u.id} ({u.name}) is not supported here: "
            f"{u.reason}")
    elif not project and sub.language_id not in answered:
        add("language_id", f"language with id {sub.language_id} doesn't exist")
    if project and sub.source_code:
        add("source_code", "must be blank")
    if not project and not sub.source_code:
        add("source_code", "can't be blank")
    if project and not sub.additional_files:
        add("additional_files", "can't be blank")
    for field, (low, inclusive, high) in _bounds(cfg).items():
        value = getattr(sub, field)
        if value is None:
            continue
        if value < low or (value == low and not inclusive):
            add(field, f"must be greater than {'or equal to ' if inclusive else ''}"
                f"{_number(low)}")
        elif not value <= high:  # also inf
            add(field, f"must be less than or equal to {_number(high)}")
    for field in ("compiler_options", "command_line_arguments"):
        if len(getattr(sub, field) or "") > MAX_OPTIONS:
            add(field, f"is too long (maximum is {MAX_OPTIONS} characters)")
    lang = answered.get(sub.language_id or 0)
    if sub.compiler_options and (lang is None or not lang.compiler_options):
        add("compiler_options", "setting compiler options is only allowed for compiled "
            "languages")
    if sub.callback_url:
        if not cfg.enable_callbacks:
            add("callback_url", "setting callback is not allowed")
        else:
            problem = callback_problem(sub.callback_url, cfg.callback_hosts)
            if problem:
                add("callback_url", problem)
    if sub.enable_network and not cfg.allow_network:
        add("enable_network", "enabling network is not allowed")
    if errors:
        raise field_errors(errors)


def callback_problem(url: str, allowed: tuple[str, ...]) -> str | None:
    """Why ``url`` may not be called back, or None. The server makes that request, so only
    http(s) to a host the admin listed in ``callback_hosts``: a loopback host only as
    ``host:port`` (one local service, never every one, Redis included), another host with
    or without its port. Anything else could make the server reach what it should not."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        return f"is not a valid URL: {e}"
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not host:
        return f"must be an http or https URL with a host, at most {MAX_URL} characters"
    port = port or (443 if parts.scheme == "https" else 80)
    named = f"[{host}]" if ":" in host else host
    local = is_loopback(host) or host in ("0.0.0.0", "::")  # the unspecified address is local
    if f"{named}:{port}" in allowed or (host in allowed and not local):
        return None
    return (f"host {named}:{port} is not allowed: this server calls back only to the hosts "
            "its admin lists in callback_hosts (loopback only as host:port)")


def to_job(sub: SubmissionIn, b64: bool, cfg: ServiceConfig) -> tuple[Job, dict[str, object]]:
    """The job, and the echo the record keeps (the submission as Judge0 would store it)."""
    _check(sub, cfg)
    texts = {k: _read(getattr(sub, k), b64, k) for k in TEXT_FIELDS}
    zipped = b64_read(sub.additional_files, "additional_files") if sub.additional_files \
        else None
    limits = {k: getattr(sub, k) if getattr(sub, k) is not None else v
              for k, v in defaults(cfg).items()}
    project = sub.language_id == PROJECT_ID
    job = Job(language=None if project else judge0_table()[0][sub.language_id or 0].name,
              project=project, caps=caps(cfg), source=texts["source_code"] or b"",
              args=_split(sub.command_line_arguments, "command_line_arguments"),
              stdin=texts["stdin"] or b"", files=_files(zipped, cfg),
              limits=JUDGE0.limits(time=float(limits["cpu_time_limit"]),
                                   wall_time=float(limits["wall_time_limit"]),
                                   memory=int(limits["memory_limit"]) * KB,
                                   file_size=int(limits["max_file_size"]) * KB,
                                   processes=int(limits["max_processes_and_or_threads"])),
              network=bool(sub.enable_network),
              options=_split(sub.compiler_options, "compiler_options"),
              stderr_to_stdout=bool(sub.redirect_stderr_to_stdout),
              runs=int(limits["number_of_runs"]))
    check_job(job, cfg, LIMIT_NAMES)
    echo: dict[str, object] = {k: v for k, v in sub.model_dump().items() if k not in TEXT_FIELDS}
    echo |= limits
    echo |= {"enable_per_process_and_thread_time_limit":
             bool(sub.enable_per_process_and_thread_time_limit),
             "enable_per_process_and_thread_memory_limit":
             bool(sub.enable_per_process_and_thread_memory_limit),
             "redirect_stderr_to_stdout": bool(sub.redirect_stderr_to_stdout),
             "enable_network": bool(sub.enable_network)}
    echo |= {k: base64.b64encode(v).decode() if v is not None else None
             for k, v in texts.items()}  # kept as base64 whatever the request's encoding
    echo["additional_files"] = base64.b64encode(zipped).decode() if zipped else None
    return job, echo


def _read(text: str | None, b64: bool, what: str) -> bytes | None:
    if text is None:
        return None
    return b64_read(text, what) if b64 else text.encode()


def _split(text: str | None, what: str) -> tuple[str, ...]:
    """Split as Judge0's shell would; the words become argv elements (no shell runs)."""
    try:
        return tuple(shlex.split(text or ""))
    except ValueError as e:
        raise field_errors({what: [str(e)]}) from None


def _files(zipped: bytes | None, cfg: ServiceConfig) -> dict[str, bytes]:
    """additional_files: a zip archive, base64-encoded whatever base64_encoded says (as
    Judge0)."""
    if not zipped:
        return {}
    if len(zipped) > cfg.max_files_bytes:
        raise archive.refused(413, f"is over {cfg.max_files_bytes} bytes")
    return archive.extract(zipped, cfg.max_files, cfg.max_files_bytes)


# -- submissions out --------------------------------------------------------------------------

def _strip(text: bytes) -> bytes:
    """Judge0's comparison: each line's trailing spaces and the trailing blank lines
    ignored."""
    return b"\n".join(line.rstrip() for line in text.split(b"\n")).rstrip()


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


def language_name(id: object) -> str | None:
    """The name of a Judge0 language id; None for an id this server no longer has."""
    if id == PROJECT_ID:
        return PROJECT_NAME
    lang = judge0_table()[0].get(int(str(id)))
    return title(lang) if lang else None


def to_json(rec: Record, b64: bool, fields: tuple[str, ...]) -> dict[str, object]:
    """The submission as Judge0's serializer writes it, ``fields`` only. Raises
    UnicodeDecodeError for a text that is not UTF-8 when ``b64`` is off."""
    sid = status_id(rec)
    full: dict[str, object] = dict(rec.request)
    for k in (*TEXT_FIELDS, "additional_files"):
        v = rec.request.get(k)
        raw = base64.b64decode(str(v)) if v is not None else None
        full[k] = _text(raw, b64 or k == "additional_files") if raw else (
            None if raw is None else "")
    for k in DECIMAL_FIELDS:
        full[k] = decimal(float(str(rec.request[k])))
    lang_id = rec.request.get("language_id")
    full |= {"token": rec.id, "status_id": sid, "status": {"id": sid, "description": STATUSES[sid]},
             "created_at": timestamp(rec.created), "finished_at": timestamp(rec.finished),
             "language": {"id": lang_id, "name": language_name(lang_id)},
             "stdout": None, "stderr": None, "compile_output": None, "message": None,
             "time": None, "wall_time": None, "memory": None, "exit_code": None,
             "exit_signal": None}
    if rec.outcome is not None:
        o = Outcome.from_dict(rec.outcome)
        full |= {"stdout": _text(o.stdout, b64), "stderr": _text(o.stderr, b64),
                 "compile_output": _text(o.compile_output.encode(), b64),
                 "message": _text(o.message.encode(), b64)}
        if o.status:  # a run happened (not a CE, nor an IE before it)
            full |= {"exit_code": o.exit_code or 0, "exit_signal": o.signal,
                     "time": decimal(o.time), "wall_time": decimal(o.wall_time),
                     "memory": o.memory // KB if o.memory is not None else None}
    wanted = set(fields)  # each lookup in a tuple would cost more than the rest of this
    return {k: full.get(k) for k in ALL_FIELDS if k in wanted}


def _fields(text: str | None) -> tuple[str, ...]:
    """Judge0's ``fields``: names separated by commas, or '*'; none: the default fields."""
    wanted = tuple(f for f in (text or "").split(",") if f)
    invalid = [f for f in wanted if f != "*" and f not in ALL_FIELDS]
    if invalid:
        raise ApiError(400, f"invalid fields: [{', '.join(invalid)}]")
    if "*" in wanted:
        return ALL_FIELDS
    return wanted or DEFAULT_FIELDS


def _flag(value: str | None) -> bool:
    """Judge0's query flags (base64_encoded, wait): only "true" is true."""
    return value == "true"


def _ruby_int(text: str | None, default: int) -> int:
    """A query number as Judge0 reads it (Ruby's to_i: a leading integer, else 0)."""
    if text is None:
        return default
    found = re.match(r"\s*[+-]?\d+", text)
    return int(found.group()) if found else 0


Flag = Annotated[str | None, Query(description='"true" or not (as Judge0)')]


def router() -> APIRouter:
    r = APIRouter(tags=["judge0"])

    @r.post("/submissions", status_code=201)
    async def create(sub: SubmissionIn, request: Request, base64_encoded: Flag = None,
                     wait: Flag = None, fields: str | None = None) -> Response:
        svc = request.app.state.service
        wanted = _fields(fields)
        b64 = _flag(base64_encoded)
        job, echo = to_job(sub, b64, svc.cfg)
        rec, = await _submit(request, [(job, echo)])
        if not _flag(wait):
            return JSONResponse({"token": rec.id}, 201)
        try:
            return JSONResponse(to_json(await svc.wait(rec.id), b64, wanted), 201)
        except UnicodeDecodeError:
            return JSONResponse({"error": NOT_UTF8, "token": rec.id}, 201)

    @r.post("/submissions/batch")
    async def create_batch(batch: BatchIn, request: Request,
                           base64_encoded: Flag = None) -> JSONResponse:
        """As Judge0: each item is accepted ({"token"}) or gets its field errors; 201 if
        any was accepted, else 422."""
        svc = request.app.state.service
        _check_batch(len(batch.submissions), svc.cfg)
        items: list[Submission | dict[str, object]] = []
        for sub in batch.submissions:
            try:
                items.append(to_job(sub, _flag(base64_encoded), svc.cfg))
            except ApiError as e:
                items.append(e.body)
        jobs = [x for x in items if isinstance(x, tuple)]
        recs = iter(await _submit(request, jobs) if jobs else ())  # all valid ones, or none
        out = [{"token": next(recs).id} if isinstance(x, tuple) else x for x in items]
        return JSONResponse(out, 201 if jobs else 422)

    @r.get("/submissions/batch")
    async def get_batch(request: Request, tokens: str = "", base64_encoded: Flag = None,
                        fields: str | None = None) -> dict[str, object]:
        svc = request.app.state.service
        wanted = _fields(fields)
        ids = tokens.strip().split(",")
        while ids and not ids[-1]:  # as Ruby's split: no empty names at the end
            ids.pop()
        _check_batch(len(ids), svc.cfg)
        b64 = _flag(base64_encoded)
        return {"submissions": [
            _answer(rec, b64, wanted, "one or more submissions") if rec and rec.judge0 else None
            for rec in await svc.get_many(ids, request)]}

    @r.get("/submissions")
    async def index(request: Request, base64_encoded: Flag = None, fields: str | None = None,
                    page: str | None = None, per_page: str | None = None) -> dict[str, object]:
        """Judge0's paginated list, newest first; needs an admin token (X-Auth-User)."""
        svc = request.app.state.service
        svc.authorise_admin(request)
        wanted = _fields(fields)
        number, size = _ruby_int(page, 1), _ruby_int(per_page, PER_PAGE)
        if number <= 0:
            raise ApiError(400, f"invalid page: {number}")
        if size <= 0 or size > MAX_PER_PAGE:
            raise ApiError(400, f"invalid per_page: {size} (1 to {MAX_PER_PAGE})")
        recs, total = await svc.page((number - 1) * size, size)
        pages = -(-total // size)
        b64 = _flag(base64_encoded)
        return {"submissions": [_answer(rec, b64, wanted, "one or more submissions")
                                for rec in recs],
                "meta": {"current_page": number,
                         "next_page": number + 1 if number < pages else None,
                         "prev_page": number - 1 if number > 1 else None,
                         "total_pages": pages, "total_count": total}}

    @r.get("/submissions/{token}")
    async def get(token: str, request: Request, base64_encoded: Flag = None,
                  fields: str | None = None) -> dict[str, object]:
        wanted = _fields(fields)
        return _answer(await _judge0_record(request, token), _flag(base64_encoded), wanted,
                       "this submission")

    @r.delete("/submissions/{token}")
    async def delete(token: str, request: Request,
                     fields: str | None = None) -> dict[str, object]:
        """As Judge0: an admin token, enable_submission_delete, and a finished submission;
        answers what was deleted, base64-encoded (whatever base64_encoded says)."""
        svc = request.app.state.service
        svc.authorise_admin(request)
        wanted = _fields(fields)
        if not svc.cfg.enable_submission_delete:
            raise ApiError(400, "delete not allowed: the admin has not set "
                           "enable_submission_delete")
        rec = await _judge0_record(request, token)
        if rec.state != "done":
            sid = status_id(rec)
            raise ApiError(400, f"submission cannot be deleted because its status is {sid} "
                           f"({STATUSES[sid]})")
        await svc.delete(token)
        return to_json(rec, True, wanted)

    # Plain functions: FastAPI runs them in its thread pool, since a title's version is read
    # from the toolchain (once per process).
    @r.get("/languages")
    def langs() -> list[dict[str, object]]:
        return [{"id": id, "name": name} for id, name in _languages()]

    @r.get("/languages/all")
    def all_langs() -> list[dict[str, object]]:
        return [{"id": id, "name": name, "is_archived": False} for id, name in _languages()]

    @r.get("/languages/{id}")
    def lang(id: int) -> dict[str, object]:
        if id == PROJECT_ID:
            return {"id": id, "name": PROJECT_NAME, "is_archived": False, "source_file": None,
                    "compile_cmd": None, "run_cmd": None}
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

    return r


def _languages() -> list[tuple[int, str]]:
    """Every language id this server runs, by name, as Judge0 orders them."""
    found = [(id, name) for id in (*judge0_table()[0], PROJECT_ID)
             if (name := language_name(id)) is not None]
    return sorted(found, key=lambda x: x[1])


def _check_batch(size: int, cfg: ServiceConfig) -> None:
    if size > cfg.max_batch:
        raise ApiError(400, "number of submissions in a batch should be less than or equal "
                       f"to {cfg.max_batch}")
    if size == 0:
        raise ApiError(400, "there should be at least one submission in a batch")


def _answer(rec: Record, b64: bool, fields: tuple[str, ...], what: str) -> dict[str, object]:
    try:
        return to_json(rec, b64, fields)
    except UnicodeDecodeError:
        raise ApiError(400, NOT_UTF8.replace("this submission", what)) from None


async def _submit(request: Request, jobs: Sequence[Submission]) -> list[Record]:
    """Queue every job or none (one hand-off), as Judge0 answers a full queue: 503 "queue
    is full"."""
    try:
        return await request.app.state.service.submit_all(jobs, request)
    except ApiError as e:
        if e.status == 429:  # the queue is full (a rate limit answers before the route)
            raise ApiError(503, f"queue is full: {e.message}", e.headers) from None
        raise


async def _judge0_record(request: Request, token: str) -> Record:
    rec = await request.app.state.service.get(token, request)
    if rec is None or not rec.judge0:  # a native id is not a token
        raise ApiError(404, f"no submission with token {token!r}")
    return rec
