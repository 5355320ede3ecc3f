"""The service harness: a real ``cellbox serve`` on 127.0.0.1 at a free port (``Server``,
the ``start_server`` fixture), requests to it, and a real HTTP listener for callbacks. Every
process started is ended by its pid."""

from __future__ import annotations

import http.server
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A process this test started, ended by its pid (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)  # its own group: only what it started
                self.popen.wait(5)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(ppid(int(entry)), []).append(int(entry))
            except OSError:
                continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Server:
    def __init__(self, tmp: Path, config: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = tmp / f"service-{self.port}.toml"
        cfg.write_text(config)
        self.proc = Proc([sys.executable, "-m", "cellbox", "serve", "--config", str(cfg),
                          "--port", str(self.port), *args], tmp / f"serve-{self.port}.log")
        self.client = httpx.Client(base_url=self.url, timeout=120)
        self._wait_up()

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 300  # generous: the emulated VM starts it slowly
        while time.monotonic() < deadline:
            if self.proc.popen.poll() is not None:
                raise AssertionError(f"cellbox serve exited: {self.proc.log.read_text()}")
            try:
                self.client.get("/openapi.json")
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("cellbox serve did not start in 300 s")

    def stop(self) -> None:
        self.client.close()
        self.proc.stop()


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory,
                 long_lived_boxes: None) -> Iterator[Callable[..., Server]]:
    tmp = tmp_path_factory.mktemp("service")
    servers: list[Server] = []

    def start(config: str = "", *args: str) -> Server:
        servers.append(Server(tmp, config, *args))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def wait_done(client: httpx.Client, path: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if body.get("state", "done") == "done" and body.get("status", {}) not in (
                {"id": 1, "description": "In Queue"}, {"id": 2, "description": "Processing"}):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{path} not done after {timeout} s: {body}")


def judge0(server: Server, sub: dict[str, object], query: str = "") -> dict[str, object]:
    r = server.client.post(f"/submissions?wait=true{query}", json=sub)
    assert r.status_code == 201, r.text
    return dict(r.json())


class Listener:
    """A real HTTP server on 127.0.0.1 that keeps the body of every PUT it gets."""

    def __init__(self) -> None:
        bodies: queue.Queue[dict[str, object]] = queue.Queue()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 - the http.server API
                bodies.put(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.bodies = bodies
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.http.server_address[1]}"  # for callback_hosts
        self.url = f"http://{self.host}/done"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.close()


ADMIN = "a" * 32
