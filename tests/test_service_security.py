"""The service's own attack surface: who a rate limit counts, where a callback may go, who
may read a submission, and what a decompression of client data may cost the server. Real
``cellbox serve`` processes (tests.test_service.Server)."""

from __future__ import annotations

import base64
import bz2
import functools
import gzip
import io
import lzma
import secrets
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
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
    own = s.client.post("/submissions", headers=b,
                        json={"language_id": 71, "source_code": "print(1)"}).json()["token"]
    got = s.client.get(f"/submissions/batch?tokens={token},{own}&fields=token",
                       headers=b).json()
    assert got == {"submissions": [None, {"token": own}]}  # each token's own answer
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


# -- decompression: capped on the bytes that come out, never on what a header says -----------

MIB = 1 << 20
RSS_BOUND = 96 * MIB  # generous: a whole accepted archive (4 MiB) costs a few MiB
LZMA_PROPS = {"id": lzma.FILTER_LZMA1, "dict_size": MIB, "lc": 3, "lp": 0, "pb": 2}


def deflate_zeros(size: int) -> bytes:
    """Raw deflate of ``size`` zero bytes, made cheaply: one 1 MiB piece that ends on a full
    flush (byte-aligned, no reference behind it) repeated, then an empty final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(b"\0" * MIB) + c.flush(zlib.Z_FULL_FLUSH)
    return piece * (size // MIB) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


@functools.cache
def compressed_zeros(method: int, size: int) -> bytes:
    """``size`` zero bytes as a zip entry's data compressed with ``method``."""
    if method == zipfile.ZIP_DEFLATED:
        return deflate_zeros(size)
    if method == zipfile.ZIP_BZIP2:
        c: bz2.BZ2Compressor | lzma.LZMACompressor = bz2.BZ2Compressor(9)
        head = b""
    else:  # zip's LZMA: version, properties' size, LZMA1 properties, raw stream
        c = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[LZMA_PROPS | {"preset": 0}])
        head = bytes([9, 4, 5, 0, (2 * 5 + 0) * 9 + 3]) + struct.pack("<L", MIB)
    out = [head] + [c.compress(b"\0" * MIB) for _ in range(size // MIB)]
    return b"".join(out) + c.flush()


def raw_zip(*entries: tuple[str, int, bytes, int, int]) -> str:
    """A zip archive written by hand, so that its headers can lie: (name, method, data as
    stored, declared size, declared CRC) per entry; base64, as additional_files."""
    local, central = b"", b""
    for name, method, data, size, crc in entries:
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                               len(data), size, len(name), 0, 0, 0, 0, 0, len(local))
        central += name.encode()
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                             len(data), size, len(name), 0) + name.encode() + data
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                      len(central), len(local), 0)
    return base64.b64encode(local + central + end).decode()


def bomb(method: int, size: int, declared: int = 16) -> str:
    """One entry of ``size`` zero bytes that says it holds ``declared`` bytes."""
    return raw_zip(("main.h", method, compressed_zeros(method, size), declared, 0))


def peak_rss_growth(server: Server, act: Callable[[], httpx.Response]) -> tuple[
        httpx.Response, int]:
    """``act``'s answer and how far the server process's peak RSS rose above its RSS
    before it (the peak is reset first: clear_refs 5, on a process this test started)."""
    pid = server.proc.popen.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = proc_status(pid, "VmRSS")
    r = act()
    return r, proc_status(pid, "VmHWM") - before


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


@pytest.fixture(scope="module")
def bombed(start_server: Callable[..., Server]) -> Server:
    """A server of its own: its memory is measured."""
    return start_server("")


def submit_files(server: Server, files: str, language_id: int = 71) -> httpx.Response:
    sub = {"language_id": language_id, "additional_files": files}
    if language_id != 89:
        sub["source_code"] = "print(1)"
    return server.client.post("/submissions?wait=true", json=sub)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                    zipfile.ZIP_LZMA], ids=["deflate", "bzip2", "lzma"])
def test_zip_bomb_refused_in_bounded_memory(bombed: Server, method: int) -> None:
    """256 MiB of zeros that declare 16 bytes, with each compression method zip has: refused
    once the bytes that came out pass the cap, and the server's memory never held them."""
    files = bomb(method, 256 * MIB)
    r, grew = peak_rss_growth(bombed, lambda: submit_files(bombed, files))
    assert grew < RSS_BOUND, f"the server's peak RSS grew by {grew >> 20} MiB"
    assert r.status_code == 413, r.text
    assert list(r.json()) == ["additional_files"] and "unpacks" in r.text, r.text


def test_zip_bomb_many_entries(bombed: Server) -> None:
    """16 entries (the most files allowed), each 64 MiB of zeros declaring one byte: the cap
    is on all the entries' bytes together."""
    data = compressed_zeros(zipfile.ZIP_DEFLATED, 64 * MIB)
    files = raw_zip(*[(f"f{i}", zipfile.ZIP_DEFLATED, data, 1, 0) for i in range(16)])
    r, grew = peak_rss_growth(bombed, lambda: submit_files(bombed, files))
    assert grew < RSS_BOUND, f"the server's peak RSS grew by {grew >> 20} MiB"
    assert r.status_code == 413 and "unpacks" in r.json()["additional_files"][0], r.text


def test_zip_of_too_many_entries(bombed: Server) -> None:
    """20000 empty entries: refused by their count, in bounded memory."""
    files = raw_zip(*[(f"f{i}", zipfile.ZIP_STORED, b"", 0, 0) for i in range(20000)])
    r, grew = peak_rss_growth(bombed, lambda: submit_files(bombed, files))
    assert grew < RSS_BOUND, f"the server's peak RSS grew by {grew >> 20} MiB"
    assert r.status_code == 413 and "20000 files" in r.json()["additional_files"][0], r.text


@pytest.mark.parametrize(("entry", "says"), [
    # stored bytes that are not the size the headers give
    (("a", zipfile.ZIP_STORED, b"x" * MIB, 1, 0), "damaged"),
    # a right size and a wrong checksum
    (("a", zipfile.ZIP_DEFLATED, zlib.compress(b"hi")[2:-4], 2, 0), "damaged"),
    # a stream cut short
    (("a", zipfile.ZIP_BZIP2, bz2.compress(b"x" * 1000)[:20], 1000, 0), "damaged"),
    # a method zip readers do not agree on (deflate64)
    (("a", 9, b"\0", 1, 0), "method"),
])
def test_zip_with_lying_headers_refused(bombed: Server, entry: tuple[str, int, bytes, int,
                                                                     int], says: str) -> None:
    r, grew = peak_rss_growth(bombed, lambda: submit_files(bombed, raw_zip(entry)))
    assert grew < RSS_BOUND, f"the server's peak RSS grew by {grew >> 20} MiB"
    assert r.status_code == 422 and says in r.json()["additional_files"][0], r.text


def test_nested_zip_bomb_reaches_the_box_unopened(bombed: Server) -> None:
    """A multi-file program whose archive holds a 1 GiB bomb as a file: the server never
    opens an archive inside the archive; the program gets the inner file's bytes as sent."""
    inner = base64.b64decode(bomb(zipfile.ZIP_DEFLATED, 1024 * MIB))
    run = b"wc -c < inner.zip\n"
    files = raw_zip(("run", zipfile.ZIP_STORED, run, len(run), zlib.crc32(run)),
                    ("inner.zip", zipfile.ZIP_STORED, inner, len(inner), zlib.crc32(inner)))
    r, grew = peak_rss_growth(bombed, lambda: submit_files(bombed, files, 89))
    assert grew < RSS_BOUND, f"the server's peak RSS grew by {grew >> 20} MiB"
    assert r.status_code == 201 and r.json()["stdout"] == f"{len(inner)}\n", r.text


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
                         ids=["bzip2", "lzma"])
def test_zip_methods_accepted(bombed: Server, method: int) -> None:
    """An honest archive in each method zip tools write reaches the program."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        zf.writestr("data.txt", "unpacked\n" * 1000)
    r = bombed.client.post("/submissions?wait=true", json={
        "language_id": 71, "additional_files": base64.b64encode(out.getvalue()).decode(),
        "source_code": "print(open('data.txt').read().count('unpacked'))"})
    assert r.status_code == 201 and r.json()["stdout"] == "1000\n", r.text


def test_compressed_request_body_refused(bombed: Server) -> None:
    """The server never inflates a request body: a gzip one is refused as such, whatever it
    would unpack to (here 1 GiB of spaces in 1 MiB)."""
    body = gzip.compress(b"{" + b" " * (64 * MIB) + b"}", 9) * 16
    r, grew = peak_rss_growth(bombed, lambda: bombed.client.post(
        "/submissions", content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"}))
    assert grew < RSS_BOUND, f"the server's peak RSS grew by {grew >> 20} MiB"
    assert r.status_code == 415 and "Content-Encoding" in r.json()["error"], r.text
