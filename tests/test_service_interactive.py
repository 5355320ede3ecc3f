"""The native API's interactive runs: a program and its interactor, each in a box of its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_service import Server, start_server  # noqa: F401 - the module's server fixture

pytestmark = [pytest.mark.service, pytest.mark.problems]

INTERACTOR = """import sys
secret = int(open(sys.argv[1]).read())
for _ in range(12):
    line = sys.stdin.readline()
    if not line:
        open(sys.argv[3] + 'judgemessage.txt', 'w').write('no guess')
        sys.exit(43)
    if int(line) == secret:
        print('correct', flush=True)
        sys.exit(42)
    print('lower' if secret < int(line) else 'higher', flush=True)
open(sys.argv[3] + 'judgemessage.txt', 'w').write('too many guesses')
sys.exit(43)
"""
BINARY = """lo, hi = 1, 1000
while True:
    m = (lo + hi) // 2
    print(m, flush=True)
    r = input()
    if r == 'correct':
        break
    lo, hi = (lo, m - 1) if r == 'lower' else (m + 1, hi)
"""


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
    ("for g in range(1, 1001):\n    print(g, flush=True)\n    input()\n", "WA"),
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
        "interactor": {"language": "cobol", "source": INTERACTOR}})
    assert r.status_code == 422
