"""The FastAPI app: the native and Judge0 routers, auth, rate limits, body caps, errors,
/healthz and /metrics, over one backend."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from cellbox.server import errors, judge0, native
from cellbox.server.backends import (
    Backend,
    CeleryBackend,
    EmbeddedBackend,
    NoWorker,
    Overloaded,
    Record,
    wait,
)
from cellbox.server.config import ServiceConfig
from cellbox.server.errors import ApiError
from cellbox.server.jobs import Job
from cellbox.server.metrics import Metrics

OPEN_PATHS = {"/healthz"}  # no token needed: load balancers probe it
RATE_WINDOW = 60.0  # seconds; rate_limit counts requests per window
RATE_CLIENTS = 10_000  # windows kept before the expired ones are dropped


class Service:
    """What the routes share: the config, the backend and the metrics."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.backend: Backend | None = None
        self._windows: dict[str, tuple[float, int]] = {}  # client -> (window start, count)

    def start(self) -> None:
        on_done = self.metrics.finished
        if self.cfg.broker:
            self.backend = CeleryBackend(self.cfg.broker, self.cfg.max_queue, on_done)
        else:
            self.backend = EmbeddedBackend(self.cfg.workers, self.cfg.max_queue, on_done)

    def _backend(self) -> Backend:
        if self.backend is None:
            raise ApiError(503, "the service is starting or stopping")
        return self.backend

    async def submit(self, job: Job, request: dict[str, object]) -> Record:
        try:
            rec = await self._backend().submit(job, request)
        except Overloaded as e:
            self.metrics.rejected.labels("overload").inc()
            raise ApiError(429, str(e), {"Retry-After": "1"}) from None
        except NoWorker as e:
            self.metrics.rejected.labels("no_worker").inc()
            raise ApiError(503, str(e)) from None
        self.metrics.submissions.labels(rec.label).inc()
        return rec

    async def get(self, id: str) -> Record | None:
        return await self._backend().get(id)

    async def wait(self, id: str) -> Record:
        rec = await wait(self._backend(), id, self.cfg.wait_timeout)
        assert rec is not None  # the caller just submitted it
        return rec

    def authorise(self, request: Request) -> str:
        """The caller's token (or address, when the server has no tokens); 401 if needed and
        missing or wrong."""
        token = request.headers.get("x-auth-token")
        auth = request.headers.get("authorization", "")
        if token is None and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if not self.cfg.tokens:
            return token or (request.client.host if request.client else "-")
        # Compare with every token in constant time: the timing tells nothing.
        if token is None or not any(hmac.compare_digest(token.encode(), t.encode())
                                    for t in self.cfg.tokens):
            raise ApiError(401, "a valid API token is required: send X-Auth-Token: TOKEN or "
                           "Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"})
        return token

    def rate(self, client: str) -> None:
        if not self.cfg.rate_limit:
            return
        now = time.monotonic()
        start, count = self._windows.get(client, (now, 0))
        if now - start >= RATE_WINDOW:
            start, count = now, 0
        if count >= self.cfg.rate_limit:
            self.metrics.rejected.labels("rate_limit").inc()
            retry = max(1, int(RATE_WINDOW - (now - start)))
            raise ApiError(429, f"rate limit: {self.cfg.rate_limit} requests a minute; retry "
                           f"in {retry} s", {"Retry-After": str(retry)})
        self._windows[client] = (start, count + 1)
        if len(self._windows) > RATE_CLIENTS:  # many addresses: forget the finished windows
            self._windows = {c: w for c, w in self._windows.items()
                             if now - w[0] < RATE_WINDOW}


def create_app(cfg: ServiceConfig) -> FastAPI:
    service = Service(cfg)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        backend, service.backend = service.backend, None
        if backend is not None:
            await backend.close()

    app = FastAPI(title="cellbox", version="0.1.0", lifespan=lifespan,
                  description="Run untrusted code in cellbox sandboxes: cellbox's own API "
                  "under /v1 and a Judge0 CE 1.13-compatible API. See docs/service.md.")
    app.state.service = service
    errors.install(app)

    @app.middleware("http")
    async def guard(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            _check_body_size(request, cfg)
            if request.url.path not in OPEN_PATHS:
                service.rate(service.authorise(request))
        except ApiError as e:
            return JSONResponse({"error": e.message}, e.status, headers=e.headers)
        return await call_next(request)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, object]:
        stats = await service._backend().stats()
        if stats.workers == 0:
            raise ApiError(503, "no worker is available")
        return {"ok": True, "workers": stats.workers, "busy": stats.busy,
                "queued": stats.queued, "backend": "celery" if cfg.broker else "embedded"}

    @app.get("/metrics", tags=["service"])
    async def metrics() -> Response:
        body = await service.metrics.render(await service._backend().stats())
        return Response(body, media_type="text/plain; version=0.0.4")

    app.include_router(native.router())
    app.include_router(judge0.router())
    return app


def _check_body_size(request: Request, cfg: ServiceConfig) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cfg.max_body_bytes:
        raise ApiError(413, f"the request body is {length} bytes; the most is "
                       f"{cfg.max_body_bytes}")
