"""Judge0 CE 1.13.1's service endpoints: /about, /version, /isolate, /license, /config_info,
/system_info, /statistics, /workers, /authenticate and /authorize, with Judge0's keys and
types, filled with what is true of this server."""

from __future__ import annotations

import os
import platform
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from importlib import metadata

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from cellbox.judge.sandbox import title
from cellbox.languages import languages
from cellbox.server.config import ServiceConfig
from cellbox.server.judge0 import (
    CALLBACK_TIMEOUT,
    CALLBACK_TRIES,
    KB,
    MAX_CPU_EXTRA_TIME,
    MAX_STACK_LIMIT,
    STATUSES,
    VERSION,
    defaults,
    language_name,
    status_id,
    timestamp,
)
from cellbox.server.records import Record

HOMEPAGE = "docs/service.md"
STATISTICS_CACHE = 600.0  # seconds, as Judge0 caches /statistics
PAGE = 1000  # records read at a time for /statistics
LICENSE = "cellbox is released under the MIT license.\n"


def router() -> APIRouter:
    r = APIRouter(tags=["judge0"])
    cache: dict[str, tuple[float, dict[str, object]]] = {}

    @r.get("/about")
    async def about() -> dict[str, str]:
        return {"version": VERSION, "homepage": HOMEPAGE, "source_code": "cellbox",
                "maintainer": "cellbox"}

    @r.get("/version", response_class=PlainTextResponse)
    async def version() -> str:
        return VERSION

    @r.get("/isolate", response_class=PlainTextResponse)
    async def isolate() -> str:
        """Judge0 answers ``isolate --version``; the sandbox here is cellbox."""
        return (f"cellbox {metadata.version('cellbox')}: an isolate-compatible sandbox "
                "(the same --init/--run/--cleanup options, meta file and exit codes)\n")

    @r.get("/license", response_class=PlainTextResponse)
    async def license() -> str:
        return LICENSE

    @r.get("/config_info")
    async def config_info(request: Request) -> dict[str, object]:
        return _config_info(request.app.state.service.cfg)

    @r.get("/system_info")
    async def system_info() -> dict[str, str]:
        return _system_info()

    @r.get("/statistics")
    async def statistics(request: Request, invalidate_cache: str | None = None
                         ) -> dict[str, object]:
        """Judge0's counts by language, status and day, computed at most every 10 minutes
        (``invalidate_cache=true`` forces it)."""
        now = time.time()
        if invalidate_cache == "true" or now - cache.get("s", (0.0, {}))[0] > STATISTICS_CACHE:
            cache["s"] = (now, await _statistics(request, now))
        return cache["s"][1]

    @r.get("/workers")
    async def workers(request: Request) -> list[dict[str, object]]:
        """One queue: its size and the workers that serve it. cellbox workers are idle or
        working; none is ever paused, and a failed run is a submission's Internal Error, not
        a worker's count."""
        stats = await request.app.state.service.stats()
        return [{"queue": "cellbox", "size": stats.queued, "available": stats.workers,
                 "idle": max(0, stats.workers - stats.busy), "working": stats.busy,
                 "paused": 0, "failed": 0}]

    @r.post("/authenticate")
    async def authenticate() -> Response:
        """200 when the caller's X-Auth-Token is valid (checked before every route)."""
        return Response(status_code=200)

    @r.post("/authorize")
    async def authorize(request: Request) -> Response:
        """200 when the caller's X-Auth-User is an admin token, else 403."""
        request.app.state.service.authorise_admin(request)
        return Response(status_code=200)

    return r


def _config_info(cfg: ServiceConfig) -> dict[str, object]:
    default = defaults(cfg)
    return {
        "maintenance_mode": False, "enable_wait_result": True,
        "enable_compiler_options": True,
        "allowed_languages_for_compile_options": [
            title(lang) for lang in languages().values() if lang.compiler_options],
        "enable_command_line_arguments": True,
        "enable_submission_delete": cfg.enable_submission_delete,
        "enable_callbacks": cfg.enable_callbacks, "callbacks_max_tries": CALLBACK_TRIES,
        "callbacks_timeout": CALLBACK_TIMEOUT, "enable_additional_files": True,
        "max_queue_size": cfg.max_queue,
        "cpu_time_limit": default["cpu_time_limit"], "max_cpu_time_limit": cfg.max_time,
        "cpu_extra_time": default["cpu_extra_time"], "max_cpu_extra_time": MAX_CPU_EXTRA_TIME,
        "wall_time_limit": default["wall_time_limit"],
        "max_wall_time_limit": cfg.max_wall_time,
        "memory_limit": default["memory_limit"], "max_memory_limit": cfg.max_memory // KB,
        "stack_limit": default["stack_limit"], "max_stack_limit": MAX_STACK_LIMIT,
        "max_processes_and_or_threads": default["max_processes_and_or_threads"],
        "max_max_processes_and_or_threads": cfg.max_processes,
        # Accepted, but cellbox limits the whole run either way (docs/service.md).
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": True,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": True,
        "max_file_size": default["max_file_size"], "max_max_file_size": cfg.max_file_size // KB,
        "number_of_runs": default["number_of_runs"], "max_number_of_runs": cfg.max_runs,
        "redirect_stderr_to_stdout": False, "max_extract_size": cfg.max_files_bytes // KB,
        "enable_batched_submissions": True, "max_submission_batch_size": cfg.max_batch,
        "submission_cache_duration": 0.0,  # answers are never cached: always the record's
        "use_docs_as_homepage": False,  # / is the playground, /docs the API's reference
        "allow_enable_network": cfg.allow_network, "enable_network": False,
    }


def _system_info() -> dict[str, str]:
    """Judge0's keys from ``lscpu`` and ``free -h``, read from /proc (no command runs)."""
    info = {"Architecture": platform.machine(), "CPU(s)": str(os.cpu_count() or 0)}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    info["Model name"] = value.strip()
                    break
        with open("/proc/meminfo") as f:
            mem = {k: int(v.split()[0]) * KB for k, _, v in
                   (line.partition(":") for line in f) if v.strip()}
    except OSError:
        return info
    info["Mem"] = _human(mem.get("MemTotal", 0))
    info["Swap"] = _human(mem.get("SwapTotal", 0))
    return info


def _human(n: float) -> str:
    """Bytes as ``free -h`` writes them (1.9Gi, 512Mi, 0B)."""
    for unit in ("B", "Ki", "Mi", "Gi", "Ti"):
        if n < 1024 or unit == "Ti":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    raise AssertionError("unreachable")


async def _statistics(request: Request, now: float) -> dict[str, object]:
    svc = request.app.state.service
    records: list[Record] = []
    while True:
        page, total = await svc.page(len(records), PAGE)
        records += page
        if not page or len(records) >= total:
            break
    today = datetime.fromtimestamp(now, UTC).date()
    days = Counter(datetime.fromtimestamp(r.created, UTC).date() for r in records)
    by_language = Counter(int(str(r.request["language_id"])) for r in records)
    by_status = Counter(status_id(r) for r in records)
    size = await svc.store_size()
    return {
        "created_at": timestamp(now),
        "cached_until": timestamp(now + STATISTICS_CACHE),
        "submissions": {"total": len(records), "today": days[today],
                        "last_30_days": {str(d): days[d] for d in _last_30(today)}},
        "languages": [{"language": {"id": id, "name": language_name(id)}, "count": n}
                      for id, n in by_language.most_common()],
        "statuses": [{"status": {"id": id, "name": STATUSES[id]}, "count": n}
                     for id, n in by_status.most_common()],
        "database": {"size_pretty": _human(size), "size_in_bytes": size},
    }


def _last_30(today: date) -> list[date]:
    """The 30 days before today, newest first (as Judge0 lists them)."""
    return [today - timedelta(days=i) for i in range(1, 31)]
