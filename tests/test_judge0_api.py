"""The Judge0 API's details as Judge0 CE 1.13.1's source defines them: formats, the
service endpoints, error bodies and flags. A real ``cellbox serve`` (tests.test_service)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable

import pytest

from tests.support.service import ADMIN, Server, start_server  # noqa: F401 - fixture

pytestmark = pytest.mark.service

TOKEN = "j" * 32
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server]) -> Server:
    s = start_server(f'tokens = ["{TOKEN}"]\nadmin_tokens = ["{ADMIN}"]\n'
                     'cors_origins = ["https://ide.example"]\n')
    s.client.headers["X-Auth-Token"] = TOKEN
    return s


def submit(s: Server, sub: dict[str, object], query: str = "") -> dict[str, object]:
    r = s.client.post(f"/submissions?wait=true{query}", json=sub)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_formats(server: Server) -> None:
    src = base64.b64encode(b"print('x' * 100)").decode()
    body = submit(server, {"language_id": 71, "source_code": src},
                  "&fields=*&base64_encoded=true")
    uuid.UUID(str(body["token"]))
    assert TIMESTAMP.match(str(body["created_at"])) and TIMESTAMP.match(str(body["finished_at"]))
    assert body["cpu_time_limit"] == "5.0" and body["wall_time_limit"] == "10.0"
    assert body["cpu_extra_time"] == "1.0" and body["memory_limit"] == 128000
    assert re.match(r"^\d+\.\d+$", str(body["time"])) and isinstance(body["memory"], int)
    assert body["exit_code"] == 0 and body["exit_signal"] is None
    stdout = str(body["stdout"])  # Ruby's encode64: 60 characters a line, a final newline
    lines = stdout.split("\n")
    assert lines[-1] == "" and all(len(x) == 60 for x in lines[:-2]) and 0 < len(lines[-2]) <= 60
    assert base64.b64decode(stdout) == b"x" * 100 + b"\n"
    assert body["language"] == {"id": 71, "name": body["language"]["name"]}  # type: ignore[index]
    assert list(body) == ["source_code", "language_id", "stdin", "expected_output", "stdout",
                          "status_id", "created_at", "finished_at", "time", "memory",
                          "stderr", "token", "number_of_runs", "cpu_time_limit",
                          "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
                          "max_processes_and_or_threads",
                          "enable_per_process_and_thread_time_limit",
                          "enable_per_process_and_thread_memory_limit", "max_file_size",
                          "compile_output", "exit_code", "exit_signal", "message",
                          "wall_time", "compiler_options", "command_line_arguments",
                          "redirect_stderr_to_stdout", "callback_url", "additional_files",
                          "enable_network", "status", "language"]


def test_base64_requests_may_have_line_breaks(server: Server) -> None:
    src = base64.encodebytes(b"print(input())  # " + b"x" * 80 + b"\n").decode()
    assert "\n" in src.strip()
    body = submit(server, {"language_id": 71, "source_code": src, "stdin": "aGk=\n"},
                  "&base64_encoded=true")
    assert base64.b64decode(str(body["stdout"])) == b"hi\n"


def test_not_utf8_needs_base64(server: Server) -> None:
    sub = {"language_id": 71, "source_code": "import sys; sys.stdout.buffer.write(b'\\xff')"}
    r = server.client.post("/submissions?wait=true", json=sub)
    assert r.status_code == 201 and "base64_encoded=true" in r.json()["error"], r.text
    token = r.json()["token"]
    r = server.client.get(f"/submissions/{token}")
    assert r.status_code == 400 and "cannot be converted to UTF-8" in r.json()["error"]
    r = server.client.get(f"/submissions/{token}?base64_encoded=true")
    assert base64.b64decode(r.json()["stdout"]) == b"\xff"


def test_flags_are_true_only_as_true(server: Server) -> None:
    r = server.client.post("/submissions?wait=1", json={"language_id": 71,
                                                         "source_code": "print(1)"})
    assert list(r.json()) == ["token"]  # wait=1 is not wait=true in Judge0
    r = server.client.get(f"/submissions/{r.json()['token']}?base64_encoded=yes")
    assert r.status_code == 200


def test_field_errors_in_judge0_shape(server: Server) -> None:
    r = server.client.post("/submissions", json={
        "language_id": 71, "source_code": "", "memory_limit": 1000, "wall_time_limit": 0.5,
        "command_line_arguments": "x" * 600, "enable_network": True})
    assert r.status_code == 422
    assert r.json() == {
        "source_code": ["can't be blank"],
        "wall_time_limit": ["must be greater than or equal to 1"],
        "memory_limit": ["must be greater than or equal to 2048"],
        "command_line_arguments": ["is too long (maximum is 512 characters)"],
        "enable_network": ["enabling network is not allowed"]}
    r = server.client.post("/submissions", json={"source_code": "x"})
    assert r.json() == {"language_id": ["can't be blank"]}
    r = server.client.post("/submissions", json={"language_id": 89, "source_code": "x"})
    assert r.json() == {"source_code": ["must be blank"],
                        "additional_files": ["can't be blank"]}
    r = server.client.post("/submissions/batch", json={"submissions": [
        {"language_id": 999, "source_code": "x"}]})
    assert r.status_code == 422  # no item accepted
    assert r.json() == [{"language_id": ["language with id 999 doesn't exist"]}]
    r = server.client.post("/submissions/batch", json={"submissions": [
        {"language_id": 71, "source_code": "x"}] * 21})
    assert r.status_code == 400 and r.json() == {
        "error": "number of submissions in a batch should be less than or equal to 20"}


def test_languages(server: Server) -> None:
    langs = server.client.get("/languages").json()
    assert langs == sorted(langs, key=lambda x: x["name"])
    assert {"id": 89, "name": "Multi-file program"} in langs
    assert all(set(x) == {"id", "name"} for x in langs)
    every = server.client.get("/languages/all").json()
    assert [(x["id"], x["name"]) for x in every] == [(x["id"], x["name"]) for x in langs]
    assert all(x["is_archived"] is False for x in every)
    assert server.client.get("/languages/89").json() == {
        "id": 89, "name": "Multi-file program", "is_archived": False, "source_file": None,
        "compile_cmd": None, "run_cmd": None}


def test_info_endpoints(server: Server) -> None:
    c = server.client
    for path, says in (("/version", "1.13.1"), ("/isolate", "cellbox"), ("/license", "MIT")):
        r = c.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert says in r.text
    info = c.get("/system_info").json()
    assert {"Architecture", "CPU(s)", "Mem", "Swap"} <= set(info) and int(info["CPU(s)"]) >= 1
    config = c.get("/config_info").json()
    assert config["submission_cache_duration"] == 0.0 and config["use_docs_as_homepage"] is False
    assert isinstance(config["max_cpu_time_limit"], float) and config["max_extract_size"] > 0
    [queue] = c.get("/workers").json()
    assert set(queue) == {"queue", "size", "available", "idle", "working", "paused", "failed"}
    assert queue["queue"] == "cellbox" and queue["available"] == 2
    assert queue["idle"] + queue["working"] == 2 and queue["paused"] == queue["failed"] == 0


def test_statistics(server: Server) -> None:
    submit(server, {"language_id": 71, "source_code": "print(1)"})
    submit(server, {"language_id": 71, "source_code": "int main( {", "expected_output": "2"})
    stats = server.client.get("/statistics?invalidate_cache=true").json()
    assert TIMESTAMP.match(stats["created_at"]) and stats["cached_until"] > stats["created_at"]
    total = stats["submissions"]["total"]
    assert total >= 2 and stats["submissions"]["today"] == total
    assert len(stats["submissions"]["last_30_days"]) == 30
    python = [x for x in stats["languages"] if x["language"]["id"] == 71]
    assert python and python[0]["count"] == total
    statuses = {x["status"]["id"]: x["count"] for x in stats["statuses"]}
    assert statuses.get(3, 0) >= 1 and sum(statuses.values()) == total
    assert stats["database"]["size_in_bytes"] > 0
    cached = server.client.get("/statistics").json()
    assert cached["created_at"] == stats["created_at"]  # computed at most every 10 minutes


def test_authenticate_and_authorize(server: Server) -> None:
    c = server.client
    assert c.post("/authenticate").status_code == 200
    assert c.post("/authenticate", headers={"X-Auth-Token": "n" * 32}).status_code == 401
    assert c.post("/authorize").status_code == 403
    assert c.post("/authorize", headers={"X-Auth-User": ADMIN}).status_code == 200


def test_cors_for_listed_origins(server: Server) -> None:
    """A browser page of a listed origin may call the API (as Judge0's ALLOW_ORIGIN); the
    preflight needs no token, the request itself still does."""
    page = {"Origin": "https://ide.example"}
    r = server.client.options("/submissions", headers=page | {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-auth-token,content-type"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://ide.example"
    r = server.client.get("/statuses", headers=page)
    assert r.headers["access-control-allow-origin"] == "https://ide.example"
    r = server.client.get("/statuses", headers={"Origin": "https://other.example"})
    assert "access-control-allow-origin" not in r.headers


def test_defaults_within_lower_caps(start_server: Callable[..., Server]) -> None:
    """An admin's cap below Judge0's default lowers the default, so that a submission which
    leaves the field out is not refused."""
    s = start_server("max_processes = 10\nmax_time = 2\nmax_memory = 67108864\n")
    config = s.client.get("/config_info").json()
    assert (config["max_processes_and_or_threads"], config["cpu_time_limit"],
            config["memory_limit"]) == (10, 2, 65536)
    body = submit(s, {"language_id": 71, "source_code": "print(1)"}, "&fields=*")
    assert body["status"] == {"id": 3, "description": "Accepted"}, body
    assert (body["max_processes_and_or_threads"], body["cpu_time_limit"],
            body["memory_limit"]) == (10, "2.0", 65536)
