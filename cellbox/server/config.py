"""The service's configuration: one TOML file (``cellbox serve --config FILE``), every key
optional, validated into a frozen dataclass. Command-line options override the file."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, fields, replace
from typing import Any

from cellbox.errors import ConfigError

MIB = 1 << 20
LIST_KEYS = ("tokens", "admin_tokens", "callback_hosts", "cors_origins")


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 2358  # Judge0's port, so clients find it where they expect
    workers: int = 2  # embedded pool size (with a broker: none here, the workers run jobs)
    broker: str | None = None  # redis://host:port/db: enqueue to Celery workers
    max_queue: int = 256  # jobs waiting for a worker before 429
    tokens: tuple[str, ...] = ()  # API tokens; required when set, and off loopback
    # Judge0's authorization tokens (header X-Auth-User): GET /submissions and DELETE need one.
    admin_tokens: tuple[str, ...] = ()
    enable_submission_delete: bool = False  # DELETE /submissions/{token}, as Judge0's setting
    state_dir: str | None = None  # embedded mode: records in STATE_DIR/records.sqlite
    rate_limit: int = 0  # requests per minute per token (or per client address); 0: none
    allow_network: bool = False  # may a submission ask for the network?
    enable_callbacks: bool = True  # Judge0's callback_url (ENABLE_CALLBACKS)
    # Hosts (names or addresses, as written in the URL) a callback_url may name besides
    # loopback: the server PUTs results there, so any other host is refused (no SSRF).
    callback_hosts: tuple[str, ...] = ()
    # Caps on what a submission may ask for (413 for sizes, 422 for limits).
    max_source_bytes: int = 256 << 10
    max_files: int = 16
    max_files_bytes: int = 4 * MIB  # all extra files together
    max_stdin_bytes: int = 4 * MIB
    max_batch: int = 20  # Judge0's MAX_SUBMISSION_BATCH_SIZE
    max_runs: int = 20  # Judge0's MAX_NUMBER_OF_RUNS
    max_body_bytes: int = 16 * MIB  # a request's body (refused from its Content-Length)
    max_time: float = 15.0  # CPU seconds
    max_wall_time: float = 30.0
    max_memory: int = 1024 * MIB
    max_output: int = 16 * MIB
    max_file_size: int = 64 * MIB
    max_processes: int = 64
    wait_timeout: float = 90.0  # longest a synchronous request waits for its result
    # Web pages (origins, or "*") whose scripts may call the API from a browser (CORS), as
    # Judge0's ALLOW_ORIGIN; none by default: a page could otherwise drive a server that
    # has no tokens from its visitors' browsers.
    cors_origins: tuple[str, ...] = ()
    # One log line per request: off by default, since at hundreds of requests a second
    # writing them costs the server more than answering.
    access_log: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1 or self.max_queue < 0 or self.max_batch < 1:
            raise ConfigError("workers and max_batch must be at least 1, max_queue at least 0")
        if any(not t or len(t) < 16 for t in self.tokens + self.admin_tokens):
            raise ConfigError("API tokens and admin tokens must be at least 16 characters long")
        if self.max_runs < 1:
            raise ConfigError("max_runs must be at least 1")
        if self.state_dir is not None and not os.path.isabs(self.state_dir):
            raise ConfigError(f"state_dir must be an absolute path, not {self.state_dir!r}")
        if not self.tokens and not is_loopback(self.host):
            raise ConfigError(f"Binding to {self.host} (not a loopback address) needs API "
                              "tokens: set tokens = [\"...\"] in the service config "
                              "(docs/service.md)")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (names are not resolved)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_service_config(path: str | None, **overrides: Any) -> ServiceConfig:
    """The file's values (if ``path``), then ``overrides`` that are not None."""
    data: dict[str, object] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"Cannot read service config {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"Service config {path} is not valid TOML: {e}") from None
    known = {f.name: f for f in fields(ServiceConfig)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"Service config {path}: unknown key(s) {', '.join(sorted(unknown))};"
                          f" known keys: {', '.join(known)}")
    for key in LIST_KEYS:
        if key in data:
            items = data[key]
            if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
                raise ConfigError(f"Service config {path}: {key} must be a list of strings")
            data[key] = tuple(items)
    for key, value in data.items():
        default = getattr(ServiceConfig, key, None)
        want = type(default) if default is not None else str
        ok = isinstance(value, want) and not (isinstance(value, bool) and want is not bool)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"Service config {path}: {key} must be a {want.__name__}, "
                              f"not {value!r}")
    cfg = ServiceConfig(**data)  # type: ignore[arg-type]
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
