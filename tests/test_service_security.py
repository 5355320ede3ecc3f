"""The service's own attack surface: who a rate limit counts, where a callback may go, and
who may read a submission. Real ``cellbox serve`` processes (tests.test_service.Server)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from tests.support.service import (  # noqa: F401 - fixtures
    ADMIN,
    Listener,
    Server,
    free_port,
    judge0,
    listener,
    start_server,
    wait_done,
)

pytestmark = pytest.mark.service

TOKEN_A, TOKEN_B = "A" * 32, "B" * 32


# -- the rate limit counts who the caller is, never what the caller says it is ---------------

@pytest.mark.parametrize("header", ["X-Auth-Token", "Authorization"])
def test_rate_limit_ignores_unauthenticated_tokens(start_server: Callable[..., Server],
                                                   header: str) -> None:
    """With no API tokens configured, a fresh made-up token on every request is still the
    same client (its address). The server's start-up probe counted too: at most 5 pass."""
    s = start_server("rate_limit = 5\n")
    codes = []
    for _ in range(7):
        made_up = secrets.token_hex(16)
        value = made_up if header == "X-Auth-Token" else f"Bearer {made_up}"
        codes.append(s.client.get("/languages", headers={header: value}).status_code)
    assert codes.count(200) <= 5 and codes[-2:] == [429, 429], codes


def test_rate_limit_wrong_tokens_do_not_buy_requests(start_server: Callable[..., Server]
                                                     ) -> None:
    """With tokens configured, a wrong token is refused (401) and is not a new client: the
    address's count goes on, so guessing tokens is limited too."""
    s = start_server(f'tokens = ["{TOKEN_A}"]\nrate_limit = 5\n')
    codes = [s.client.get("/languages", headers={"X-Auth-Token": secrets.token_hex(16)}
                          ).status_code for _ in range(7)]
    assert codes.count(401) <= 5 and codes[-2:] == [429, 429], codes
    assert s.client.get("/languages", headers={"X-Auth-Token": TOKEN_A}).status_code == 200


@pytest.fixture(scope="module")
def plain(start_server: Callable[..., Server]) -> Server:
    return start_server("")


# -- callback_url reaches no local service unless the admin names it --------------------------

@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/", "http://localhost:6379/", "http://[::1]:6379/",
    "http://127.8.9.10:2358/", "http://0.0.0.0:6379/", "http://127.0.0.1/",
    "https://localhost:443/x"])
def test_callback_to_loopback_refused_by_default(plain: Server, url: str) -> None:
    r = plain.client.post("/submissions", json={"language_id": 71, "source_code": "",
                                            "callback_url": url})
    assert r.status_code == 422 and "callback_url" in r.text, r.text


def test_callback_to_listed_loopback_port_only(start_server: Callable[..., Server],
                                               listener: Listener) -> None:
    """The admin lists 127.0.0.1:PORT: that port is called back, the next port is not."""
    port = int(listener.url.split(":")[2].split("/")[0])
    s = start_server(f'callback_hosts = ["127.0.0.1:{port}"]\n')
    token = s.client.post("/submissions", json={
        "language_id": 71, "source_code": "print(1)", "callback_url": listener.url}
    ).json()["token"]
    assert listener.bodies.get(timeout=60)["token"] == token
    other = f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/done"
    r = s.client.post("/submissions", json={"language_id": 71, "source_code": "",
                                            "callback_url": other})
    assert r.status_code == 422, r.text


# -- a submission belongs to the token that made it --------------------------------------------

@pytest.fixture(scope="module")
def two_tenants(start_server: Callable[..., Server]) -> Server:
    return start_server(f'tokens = ["{TOKEN_A}", "{TOKEN_B}"]\n'
                        f'admin_tokens = ["{ADMIN}"]\nenable_submission_delete = true\n')


def test_judge0_submission_hidden_from_other_tokens(two_tenants: Server) -> None:
    s, a, b = two_tenants, {"X-Auth-Token": TOKEN_A}, {"X-Auth-Token": TOKEN_B}
    r = s.client.post("/submissions?wait=true", headers=a,
                      json={"language_id": 71, "source_code": "print('secret')"})
    token = r.json()["token"]
    assert s.client.get(f"/submissions/{token}", headers=a).json()["stdout"] == "secret\n"
    assert s.client.get(f"/submissions/{token}", headers=b).status_code == 404
    got = s.client.get(f"/submissions/batch?tokens={token}", headers=b).json()
    assert got == {"submissions": [None]}
    # B is no admin: no delete, whatever B's API token
    r = s.client.delete(f"/submissions/{token}", headers=b | {"X-Auth-User": TOKEN_B})
    assert r.status_code in (403, 404)
    admin = b | {"X-Auth-User": ADMIN}
    assert s.client.get(f"/submissions/{token}", headers=admin).json()["stdout"] == "secret\n"
    assert s.client.delete(f"/submissions/{token}", headers=admin).status_code == 200


def test_native_submission_hidden_from_other_tokens(two_tenants: Server) -> None:
    s, a, b = two_tenants, {"X-Auth-Token": TOKEN_A}, {"Authorization": f"Bearer {TOKEN_B}"}
    id = s.client.post("/v1/submissions", headers=a,
                       json={"command": ["/bin/echo", "mine"]}).json()["id"]
    s.client.headers.update(a)
    try:
        assert wait_done(s.client, f"/v1/submissions/{id}")["stdout"] == "mine\n"
    finally:
        del s.client.headers["X-Auth-Token"]
    assert s.client.get(f"/v1/submissions/{id}", headers=b).status_code == 404


def test_no_cors_by_default(plain: Server) -> None:
    """A server without tokens allows no web page to call it from its visitors' browsers."""
    r = plain.client.options("/submissions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    r = plain.client.get("/statuses", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
