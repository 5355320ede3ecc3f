"""The FastAPI app: the native and Judge0 routers, auth, rate limits, body caps, errors,
/healthz and /metrics, over one backend; the playground at / and the API's reference at
/docs, both served from this package (no CDN: they work offline)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cellbox.judge.sandbox import read_host_versions
from cellbox.languages import languages
from cellbox.server import callbacks, errors, judge0, judge0_info, native
from cellbox.server.backends import (
    Backend,
    CeleryBackend,
    EmbeddedBackend,
    NoWorker,
    Overloaded,
    PoolStats,
    Record,
)
from cellbox.server.config import ServiceConfig
from cellbox.server.errors import ApiError
from cellbox.server.jobs import Job, Submission
from cellbox.server.metrics import Metrics
from cellbox.server.ratelimit import LocalRateLimit, RateLimit, RedisRateLimit

# No token needed: load balancers probe /healthz; the pages and the API's schema are public
# (the playground asks for a token to call the API).
OPEN_PATHS = {"/healthz", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
DOCS_FILES = "/static/docs"  # Swagger UI's files, from the fastapi-offline package
ADMIN_HEADER = "x-auth-user"  # Judge0's authorization header (AUTHZ_HEADER)


class Service:
    """What the routes share: the config, the backend, the rate limit and the metrics."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.backend: Backend | None = None
        self.rate_limit: RateLimit | None = None
        self._callbacks: set[asyncio.Task[bool]] = set()

    def start(self) -> None:
        cfg = self.cfg
        if cfg.broker:
            celery = CeleryBackend(cfg.broker, cfg.max_queue, self.metrics.finished)
            self.backend = celery
            if cfg.rate_limit:
                self.rate_limit = RedisRateLimit(cfg.rate_limit, celery.redis)
        else:
            self.backend = EmbeddedBackend(cfg.workers, cfg.max_queue, self._finished,
                                           cfg.state_dir)
            if cfg.rate_limit:
                self.rate_limit = LocalRateLimit(cfg.rate_limit)

    def _finished(self, rec: Record) -> None:
        """Embedded mode: count the run, and send its callback (a worker sends it when there
        is a broker)."""
        self.metrics.finished(rec)
        if rec.request.get("callback_url"):
            task = asyncio.create_task(asyncio.to_thread(callbacks.deliver, rec))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    def _backend(self) -> Backend:
        if self.backend is None:
            raise ApiError(503, "the service is starting or stopping")
        return self.backend

    async def submit(self, job: Job, echo: dict[str, object], request: Request) -> Record:
        """Queue ``job``; its record keeps ``echo`` (what the API answers from) and the
        caller's token as its owner."""
        return (await self.submit_all([(job, echo)], request))[0]

    async def submit_all(self, jobs: Sequence[Submission], request: Request) -> list[Record]:
        """Queue every job (each with its echo) or none: one hand-off to the backend."""
        try:
            recs = await self._backend().submit(jobs, request.state.owner)
        except Overloaded as e:
            self.metrics.rejected.labels("overload").inc()
            raise ApiError(429, str(e), {"Retry-After": "1"}) from None
        except NoWorker as e:
            self.metrics.rejected.labels("no_worker").inc()
            raise ApiError(503, str(e)) from None
        for rec in recs:
            self.metrics.submissions.labels(rec.label).inc()
        return recs

    async def get(self, id: str, request: Request) -> Record | None:
        return (await self.get_many([id], request))[0]

    async def get_many(self, ids: Sequence[str], request: Request) -> list[Record | None]:
        """Each record, if the caller may see it: its owner's token or an admin's. None
        otherwise, as for an unknown id (an id tells nothing of other tenants)."""
        recs = await self._backend().get_many(ids)
        owner = request.state.owner
        if all(rec is None or rec.owner == owner for rec in recs) or self.is_admin(request):
            return recs
        return [rec if rec is not None and rec.owner == owner else None for rec in recs]

    async def page(self, offset: int, count: int) -> tuple[list[Record], int]:
        return await self._backend().page(offset, count)

    async def stats(self) -> PoolStats:
        return await self._backend().stats()

    async def store_size(self) -> int:
        return await self._backend().size()

    async def delete(self, id: str) -> None:
        await self._backend().delete(id)

    async def wait(self, id: str) -> Record:
        rec = await self._backend().wait(id, self.cfg.wait_timeout)
        assert rec is not None  # the caller just submitted it
        return rec

    async def authenticate(self, request: Request) -> None:
        """Count the request against the caller's rate limit, then check its token (401 if
        the server has tokens and it is missing or wrong). The caller is its token once that
        is known to be valid, and its address otherwise: a made-up token is not a new client.
        Sets ``request.state.owner``: the valid token, or None on a server without tokens."""
        token = request.headers.get("x-auth-token")
        auth = request.headers.get("authorization", "")
        if token is None and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        valid = token is not None and _known(token, self.cfg.tokens)
        address = request.client.host if request.client else "-"
        await self.rate(f"token:{token}" if valid else f"address:{address}")
        if self.cfg.tokens and not valid:
            raise ApiError(401, "a valid API token is required: send X-Auth-Token: TOKEN or "
                           "Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"})
        request.state.owner = token if valid else None

    def is_admin(self, request: Request) -> bool:
        return _known(request.headers.get(ADMIN_HEADER, ""), self.cfg.admin_tokens)

    def authorise_admin(self, request: Request) -> None:
        """Judge0's authorization: listing and deleting submissions need an admin token in
        X-Auth-User; with no admin token configured they are refused (403), as in Judge0."""
        if not self.cfg.admin_tokens:
            raise ApiError(403, "listing and deleting submissions need an admin token: the "
                           "admin sets admin_tokens in the service config")
        if not self.is_admin(request):
            raise ApiError(403, "a valid admin token is required in X-Auth-User")

    async def rate(self, client: str) -> None:
        if self.rate_limit is None or self.backend is None:
            return
        retry = await self.rate_limit.hit(client)
        if retry is not None:
            self.metrics.rejected.labels("rate_limit").inc()
            raise ApiError(429, f"rate limit: {self.cfg.rate_limit} requests a minute; retry "
                           f"in {retry} s", {"Retry-After": str(retry)})


def _known(token: str, tokens: tuple[str, ...]) -> bool:
    """Compared with every token in constant time: the timing tells nothing."""
    return any([hmac.compare_digest(token.encode(), t.encode()) for t in tokens])


def create_app(cfg: ServiceConfig) -> FastAPI:
    service = Service(cfg)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The languages' names carry their toolchains' versions: read them in the background
        # from the start (a few seconds), so that the first /languages does not pay for all.
        asyncio.get_running_loop().run_in_executor(None, read_host_versions,
                                                   list(languages().values()))
        service.start()
        yield
        backend, service.backend = service.backend, None
        if backend is not None:
            await backend.close()

    app = FastAPIOffline(title="cellbox", version="0.1.0", lifespan=lifespan,
                         static_url=DOCS_FILES,
                         redoc_url=None,  # ReDoc would fetch its logo from a CDN
                         description="Run untrusted code in cellbox sandboxes: cellbox's own API "
                         "under /v1 and a Judge0 CE 1.13-compatible API. See "
                         "docs/service.md.")
    app.state.service = service
    errors.install(app)
    app.add_middleware(Guard, service=service)
    if cfg.cors_origins:  # outermost: it answers preflights, which carry no token
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins),
                           allow_methods=["*"], allow_headers=["*"])

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, object]:
        stats = await service.stats()
        if stats.workers == 0:
            raise ApiError(503, "no worker is available")
        return {"ok": True, "workers": stats.workers, "busy": stats.busy,
                "queued": stats.queued, "backend": "celery" if cfg.broker else "embedded"}

    @app.get("/metrics", tags=["service"])
    async def metrics() -> Response:
        body = await service.metrics.render(await service.stats())
        return Response(body, media_type="text/plain; version=0.0.4")

    playground = resources.files("cellbox.server").joinpath("static/playground.html")
    page = playground.read_text()

    @app.get("/", include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(page)

    app.include_router(native.router())
    app.include_router(judge0.router())
    app.include_router(judge0_info.router())
    return app


class Guard:
    """Before any route: the body's size (from its Content-Length, 413) and encoding (none
    accepted, 415), the caller's token
    and rate limit (``Service.authenticate``: 401, 429); then the body is counted as it
    arrives, for bodies without a Content-Length (chunked), which would otherwise be read
    into memory whole (FastAPI lets the HTTPException raised from ``receive`` through as the
    answer: 413, as JSON by errors.install). Plain ASGI: no task or stream per request."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app, self.service = app, service
        self.cap = service.cfg.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            _check_body(request, self.service.cfg)
            path = request.url.path
            if path not in OPEN_PATHS and not path.startswith(DOCS_FILES + "/"):
                await self.service.authenticate(request)
        except ApiError as e:
            await JSONResponse(e.body, e.status, headers=e.headers)(scope, receive, send)
            return
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.cap:
                raise HTTPException(413, f"the request body is over {self.cap} bytes")
            return message

        await self.app(scope, capped, send)


def _check_body(request: Request, cfg: ServiceConfig) -> None:
    """413 for a body over the cap by its Content-Length; 415 for a compressed body: the
    server never inflates one (what it unpacks to is not bounded by what was sent)."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise ApiError(415, f"Content-Encoding {encoding} is not accepted: send the request "
                       "body uncompressed")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cfg.max_body_bytes:
        raise ApiError(413, f"the request body is {length} bytes; the most is "
                       f"{cfg.max_body_bytes}")
