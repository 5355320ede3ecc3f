"""cellbox serve's pages in a real browser: Debian's chromium, headless, driven through
Playwright (its own browser builds are never downloaded). The playground at / runs programs
through the native API; /docs (Swagger UI) loads everything from the server itself.

Every request the browser makes is recorded, and none that would leave the server is sent:
there may be none (no CDN, no telemetry: chromium starts with its background networking off
and a new empty profile)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.skips import lacks

from tests.support.service import Server, start_server  # noqa: F401 - fixture

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test "
                               "dependency (pip install -e '.[test]')")
Image = pytest.importorskip("PIL.Image", reason="pillow is a test dependency")

pytestmark = [pytest.mark.service, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "p" * 32
AC_GREEN = (0x1A, 0x7F, 0x37)  # the AC badge's colour in playground.html


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server]) -> Server:
    return start_server(f'tokens = ["{TOKEN}"]\nworkers = 2\n')


@pytest.fixture
def page(server: Server, tmp_path: Path) -> Iterator[tuple[object, list[str]]]:
    if not Path(CHROMIUM).exists():
        lacks("chromium (scripts/bootstrap.sh installs it)")
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1200, "height": 800})
        try:
            local = (server.url, f"blob:{server.url}", "data:")
            # Whatever the page asks beyond the server is recorded (and fails the test) but
            # never sent: these tests reach nothing outside this machine.
            browser.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(local) else route.abort())
            tab = browser.pages[0] if browser.pages else browser.new_page()
            tab.on("request", lambda r: requests.append(r.url))
            yield tab, requests
        finally:
            browser.close()
    strays = [u for u in requests if not u.startswith(local)]
    assert not strays, f"the page reached beyond the server: {strays}"


def colours(png: Path) -> list[tuple[int, tuple[int, int, int]]]:
    """(count, colour) of every colour in the image."""
    with Image.open(png) as im:
        return im.convert("RGB").getcolors(1 << 24)


def green_pixels(png: Path) -> int:
    return sum(n for n, rgb in colours(png)
               if all(abs(a - b) <= 8 for a, b in zip(rgb, AC_GREEN, strict=True)))


def distinct_colours(png: Path) -> int:
    return len(colours(png))


def test_playground_runs_a_program(server: Server, page: tuple[object, list[str]],
                                   tmp_path: Path) -> None:
    tab, _ = page
    tab.goto(server.url + "/")
    tab.fill("#token", TOKEN)
    tab.dispatch_event("#token", "change")  # the languages are listed with the token
    tab.wait_for_function("document.querySelector('#language').options.length > 0 && "
                          "!document.querySelector('#run').disabled")
    names = tab.eval_on_selector_all("#language option", "os => os.map(o => o.value)")
    assert {"python", "c"} <= set(names), names
    tab.select_option("#language", "c")
    assert "scanf" in tab.input_value("#source")  # the language's sample replaced the editor
    tab.select_option("#language", "python")
    tab.fill("#source", "import sys\nname = input()\nprint(name[::-1])\n"
             "print('to stderr', file=sys.stderr)\n")
    tab.fill("#stdin", "playground")
    tab.click("#run")
    tab.wait_for_function("['AC','WA','TLE','MLE','RE','OLE','CE','IE']"
                          ".includes(document.querySelector('#verdict').textContent)",
                          timeout=60_000)
    assert tab.text_content("#verdict") == "AC"
    assert tab.text_content("#stdout") == "dnuorgyalp\n"
    assert "to stderr" in (tab.text_content("#stderr") or "")
    assert tab.text_content("#time").endswith(" s")  # type: ignore[union-attr]
    assert tab.text_content("#memory").endswith(" KiB")  # type: ignore[union-attr]
    shot = tmp_path / "playground-ac.png"  # pytest keeps it (the last 3 runs) to look at
    tab.screenshot(path=str(shot), full_page=True)
    assert distinct_colours(shot) > 50  # text, boxes, the badge: not a blank page
    assert green_pixels(shot) > 200  # the AC badge is on the screen
    badge = tmp_path / "playground-verdict.png"
    tab.locator("#verdict").screenshot(path=str(badge))
    assert green_pixels(badge) > 0.5 * Image.open(badge).size[0] * Image.open(badge).size[1]


def test_playground_shows_failures(server: Server, page: tuple[object, list[str]]) -> None:
    tab, _ = page
    tab.goto(server.url + "/")
    tab.fill("#token", TOKEN)
    tab.dispatch_event("#token", "change")
    tab.wait_for_function("!document.querySelector('#run').disabled")
    tab.select_option("#language", "c")
    tab.fill("#source", "int main( {")
    tab.click("#run")
    tab.wait_for_function("document.querySelector('#verdict').textContent === 'CE'",
                          timeout=60_000)
    assert "error" in (tab.text_content("#stderr") or "")
    tab.fill("#token", "x" * 32)  # a wrong token: the API's 401 is shown, not swallowed
    tab.click("#run")
    tab.wait_for_function("document.querySelector('#error').textContent.length > 0")
    assert "token" in (tab.text_content("#error") or "")


def test_docs_work_offline(server: Server, page: tuple[object, list[str]],
                           tmp_path: Path) -> None:
    tab, requests = page
    tab.goto(server.url + "/docs")
    try:
        tab.wait_for_selector(".opblock", timeout=30_000)  # Swagger UI rendered the schema
    finally:
        tab.screenshot(path=str(tmp_path / "docs.png"))
    assert tab.locator(".opblock").count() > 20
    assert any(u.endswith("/swagger-ui-bundle.js") for u in requests)
    assert "/v1/runs" in (tab.text_content("body") or "")
    assert distinct_colours(tmp_path / "docs.png") > 50
