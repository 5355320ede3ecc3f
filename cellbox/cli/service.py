"""``cellbox serve`` and ``cellbox worker``: the execution service (docs/service.md).
Registered in ``cellbox.cli.subcommands``; FastAPI, uvicorn and Celery are imported only when
one of them runs (they come with the ``service`` extra)."""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

from cellbox.cli.subcommands import parser as _parser
from cellbox.errors import UsageError

if TYPE_CHECKING:
    import argparse


def serve_parser() -> argparse.ArgumentParser:
    p = _parser("serve", "Serve cellbox's HTTP API (/v1) and a Judge0 CE 1.13-compatible API "
                "on FastAPI and uvicorn, with OpenAPI docs at /docs. Runs go to a pool of "
                "worker processes on this machine, or with --broker to Celery workers "
                "('cellbox worker'). API tokens are required off loopback. See "
                "docs/service.md.")
    p.add_argument("--config", metavar="FILE", help="service config (TOML): tokens, caps, "
                   "rate limit, network policy; see docs/service.md")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; any other needs tokens)")
    p.add_argument("--port", type=int, help="port (default 2358, Judge0's)")
    p.add_argument("--workers", type=int, help="worker processes of the embedded pool "
                   "(default 2)")
    p.add_argument("--broker", metavar="URL", help="Redis URL (redis://HOST:PORT/DB): enqueue "
                   "to Celery workers instead of running here; records are kept in Redis")
    return p


def worker_parser() -> argparse.ArgumentParser:
    p = _parser("worker", "Run submissions that 'cellbox serve --broker' enqueues: a Celery "
                "worker with a Redis broker, on any machine with cellbox set up. A worker "
                "process killed in the middle of a run makes the run start again once, then "
                "an Internal Error.")
    p.add_argument("--broker", required=True, metavar="URL", help="Redis URL, the same as "
                   "the server's")
    p.add_argument("--concurrency", type=int, default=2, metavar="N",
                   help="runs at once (worker processes; default 2)")
    p.add_argument("--hostname", metavar="NAME", help="Celery node name (default "
                   "cellbox@HOST)")
    return p


def serve_main(argv: list[str]) -> int:
    args = serve_parser().parse_args(argv)
    try:
        import uvicorn

        from cellbox.server.app import create_app
        from cellbox.server.config import load_service_config
    except ImportError as e:
        raise UsageError(f"cellbox serve needs the service extra ({e.name} is missing): "
                         "pip install 'cellbox[service]'") from None
    cfg = load_service_config(args.config, host=args.host, port=args.port,
                              workers=args.workers, broker=args.broker)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler
    # it found: this one, so the process ends through Python's exit, whose hooks remove what
    # the workers' forkserver made in the temporary directory, and with status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level="info",
                access_log=cfg.access_log, timeout_graceful_shutdown=5)
    return 0


def worker_main(argv: list[str]) -> int:
    args = worker_parser().parse_args(argv)
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    try:
        from cellbox.server.celery_app import make_app
    except ImportError as e:
        raise UsageError(f"cellbox worker needs the service extra ({e.name} is missing): "
                         "pip install 'cellbox[service]'") from None
    options = ["worker", "--loglevel=INFO", "--pool=prefork", "-O", "fair",
               f"--concurrency={args.concurrency}", "--without-gossip", "--without-mingle"]
    if args.hostname:
        options.append(f"--hostname={args.hostname}")
    make_app(args.broker).worker_main(options)
    return 0


# Registered with cellbox.cli.subcommands: name -> (handler, parser maker).
COMMANDS = {
    "serve": (serve_main, serve_parser),
    "worker": (worker_main, worker_parser),
}
