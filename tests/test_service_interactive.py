"""The native API's interactive runs: a program and its interactor, each in a box of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.service import Server, start_server  # noqa: F401 - the module's server fixture

pytestmark = [pytest.mark.service, pytest.mark.problems]

# The project's own interactive package: its interactor, and a submission it accepts
GUESS = Path(__file__).parent / "problems" / "guess"
INTERACTOR = (GUESS / "output_validators" / "interactor" / "validate.py").read_text()
BINARY = (GUESS / "submissions" / "accepted" / "binary.py").read_text()
LINEAR = (GUESS / "submissions" / "wrong_answer" / "linear.py").read_text()


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server]) -> Server:  # noqa: F811
    return start_server("workers = 1\n")


def _run(server: Server, source: str, **extra: object) -> dict[str, object]:
    r = server.client.post("/v1/runs", json={
        "language": "python", "source": source, "stdin": "777\n",
        "limits": {"time": 1, "wall_time": 2},
        "interactor": {"language": "python", "source": INTERACTOR,
                       "limits": {"time": 2, "wall_time": 4}}, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


@pytest.mark.parametrize(("source", "verdict"), [
    (BINARY, "AC"),
    (LINEAR, "WA"),
    ("print(500, flush=True)\nraise SystemExit(4)\n", "RE"),
    ("import sys\nsys.stdin.read()\n", "TLE"),  # waits for input that never comes
])
def test_an_interactive_run_gets_the_formats_verdict(server: Server, source: str,
                                                     verdict: str) -> None:
    body = _run(server, source)
    assert body["verdict"] == verdict, body
    assert body["stdout"] == ""  # the interactor took it


def test_an_interactor_goes_with_a_language_and_no_expected_output(server: Server) -> None:
    r = server.client.post("/v1/runs", json={
        "language": "python", "source": BINARY, "expected_output": "x",
        "interactor": {"language": "python", "source": INTERACTOR}})
    assert r.status_code == 422
    r = server.client.post("/v1/runs", json={
        "language": "python", "source": BINARY,
        "interactor": {"language": "brainfuck", "source": INTERACTOR}})
    assert r.status_code == 422
