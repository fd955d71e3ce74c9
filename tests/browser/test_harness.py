"""The browser harness itself, on pages served under the console's strict CSP by a local
server: axe finds known violations (and none on a clean page), its injection survives the
CSP, screenshots hold the whole page, the phone viewport is a phone's, waits poll."""

from __future__ import annotations

import re
import struct
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException

from tests.browser.accessibility import axe_check, axe_violations
from tests.browser.support import (
    LAPTOP,
    PHONE,
    executable,
    phone,
    screenshot,
    wait_for_element,
    wait_for_text,
)

pytestmark = pytest.mark.browser

CSP = "default-src 'self'; script-src 'self'; style-src 'self'"
HEAD = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>{title}</title>{extra}</head><body><main><h1>{title}</h1>{body}</main></body></html>"
)
PAGES = {
    "/clean.html": HEAD.format(
        title="Clean",
        extra="",
        body='<img src="/none.png" alt="A chart"><label for="q">Query</label>'
        '<input id="q" type="search"><button type="submit">Search</button>',
    ),
    "/broken.html": HEAD.format(
        title="Broken",
        # Blocked by the CSP: proves the policy is in force where axe runs.
        extra="<script>window.inlineRan = true;</script>",
        body='<img src="/none.png" class="chart"><input type="text" name="q">'
        '<a href="/clean.html"><img src="/none.png"></a>',
    ),
    "/long.html": HEAD.format(title="Long", extra="", body="<p>A line.</p>" * 300),
    "/late.html": HEAD.format(
        title="Late",
        extra='<script src="/late.js"></script>',
        body='<p id="status">queued</p>',
    ),
    "/late.js": "setTimeout(() => {"
    " document.getElementById('status').textContent = 'indexed';"
    " const done = document.createElement('p'); done.id = 'done'; done.textContent = 'done';"
    " document.querySelector('main').append(done); }, 300);",
}


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = PAGES.get(self.path)
        if page is None:
            self.send_error(404)
            return
        body = page.encode()
        kind = "text/javascript" if self.path.endswith(".js") else "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows failures, not every request."""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_browser_is_debians_chromium(driver: webdriver.Chrome) -> None:
    version = subprocess.run(
        [executable("chromedriver"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert driver.capabilities["browserName"] == "chrome"
    assert driver.capabilities["browserVersion"] == version
    assert driver.capabilities["chrome"]["chromedriverVersion"].startswith(version)


def test_axe_reports_the_known_violations(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/broken.html")
    found = {violation.rule: violation for violation in axe_violations(driver)}
    assert {"image-alt", "label", "link-name"} <= set(found)
    assert found["image-alt"].impact == "critical"
    assert found["image-alt"].targets == (".chart", "a > img")
    with pytest.raises(AssertionError) as failure:
        axe_check(driver)
    message = str(failure.value)
    assert "image-alt (critical): Images must have alternative text: .chart, a > img" in message
    assert re.search(r"^- label \(critical\): .*input", message, re.MULTILINE)


def test_a_clean_page_passes(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/clean.html")
    assert axe_violations(driver) == []
    axe_check(driver)


def test_axe_runs_under_the_strict_csp(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/broken.html")
    assert driver.execute_script("return window.inlineRan === undefined"), "the CSP is not on"
    assert driver.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        "document.head.append(s); return window.injected === undefined;"
    ), "the page may run inline scripts: no CSP to prove anything under"
    assert "image-alt" in {violation.rule for violation in axe_violations(driver)}


def test_screenshot_holds_the_whole_page(
    driver: webdriver.Chrome, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYAISERV_BROWSER_ARTIFACTS", str(tmp_path / "shots"))
    driver.get(f"{site}/long.html")
    page_height = driver.execute_script("return document.documentElement.scrollHeight")
    assert page_height > LAPTOP.height
    path = screenshot(driver, "long-laptop")
    assert path == tmp_path / "shots" / "long-laptop.png"
    assert png_size(path) == (LAPTOP.width, page_height)
    assert driver.execute_script("return innerHeight") == LAPTOP.height
    with pytest.raises(ValueError, match="screenshot name"):
        screenshot(driver, "../escape")


def test_phone_lays_the_page_out_as_a_phone(
    driver: webdriver.Chrome, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYAISERV_BROWSER_ARTIFACTS", str(tmp_path))
    with phone(driver):
        driver.get(f"{site}/long.html")
        width, height, coarse = driver.execute_script(
            "return [innerWidth, innerHeight, matchMedia('(pointer: coarse)').matches]"
        )
        assert (width, height, coarse) == (PHONE.width, PHONE.height, True)
        page_height = driver.execute_script("return document.documentElement.scrollHeight")
        assert png_size(screenshot(driver, "long-phone")) == (PHONE.width, page_height)
    driver.get(f"{site}/clean.html")
    assert driver.execute_script("return innerWidth") == LAPTOP.width


def test_waits_poll_until_the_page_changes(driver: webdriver.Chrome, site: str) -> None:
    driver.get(f"{site}/late.html")
    assert wait_for_text(driver, "indexed", "#status").text == "indexed"
    assert wait_for_element(driver, "#done").text == "done"
    with pytest.raises(TimeoutException, match="#missing"):
        wait_for_element(driver, "#missing", timeout=0.5)
