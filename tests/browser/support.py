"""Helpers the browser tests share (fixtures stay in conftest.py): Debian's chromium under
Selenium, the viewports a page must work in, waits that poll instead of sleeping,
screenshots kept as test artifacts, and the console as served (``Site``) with a browser
pointed at it (``Browse``)."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from myaiserv.stack.web import WebService
from tests.browser.accessibility import axe_check
from tests.support import ConsoleUser

T = TypeVar("T")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Generous: the tests share two cores with the stack and other sessions.
WAIT_S = 15.0
# Chromium refuses to capture taller images than its largest texture.
MAX_SHOT_HEIGHT = 16_384
# Root in a container: no sandbox, no /dev/shm (64 MiB there), no GPU.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu")
# The served console's session secret (a test value, as the tests' own stack is).
SITE_SECRET = "browser-tests-console-secret-0123456789"  # noqa: S105


@dataclass(frozen=True)
class Viewport:
    """A page's size in CSS pixels; `mobile` also honours `<meta name="viewport">` and
    reports touch input, as a phone does (a desktop window only gets narrower)."""

    name: str
    width: int
    height: int
    mobile: bool = False


LAPTOP = Viewport("laptop", 1366, 900)
PHONE = Viewport("phone", 390, 844, mobile=True)


def executable(name: str) -> str:
    """The path of a system program; the tests never download a browser or a driver."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `make system-deps` (Debian's chromium and "
            "chromium-driver)"
        )
    return path


def start_chromium() -> webdriver.Chrome:
    """Headless Debian chromium through its own chromedriver. Both paths are given, so
    Selenium Manager (which would download them) never runs."""
    options = webdriver.ChromeOptions()
    options.binary_location = executable("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={LAPTOP.width},{LAPTOP.height}")
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=executable("chromedriver"))
    )
    driver.set_script_timeout(WAIT_S)
    use_viewport(driver, LAPTOP)
    return driver


def use_viewport(driver: webdriver.Chrome, viewport: Viewport) -> None:
    """Lay pages out at exactly this size (a window's size also counts its frame), through
    the DevTools emulation a phone preview uses; it holds across navigations."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": viewport.width,
            "height": viewport.height,
            "deviceScaleFactor": 1,
            "mobile": viewport.mobile,
        },
    )
    driver.execute_cdp_cmd(
        "Emulation.setTouchEmulationEnabled",
        {"enabled": viewport.mobile, "maxTouchPoints": 5 if viewport.mobile else 1},
    )


@contextlib.contextmanager
def phone(driver: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """`with phone(driver): driver.get(url)`: the page as a phone shows it, then a laptop."""
    use_viewport(driver, PHONE)
    try:
        yield driver
    finally:
        use_viewport(driver, LAPTOP)


def settled(condition: Callable[[webdriver.Chrome], T]) -> Callable[[webdriver.Chrome], T | bool]:
    """``condition``, false while the page is being replaced: Chromium answers a question
    about an element of the outgoing page with an "unknown error" (its node "does not
    belong to the document") rather than the stale-element error waits expect."""

    def check(driver: webdriver.Chrome) -> T | bool:
        try:
            return condition(driver)
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return False
            raise

    return check


def wait_for_element(driver: webdriver.Chrome, css: str, timeout: float = WAIT_S) -> WebElement:
    """The first visible element matching `css`, once there is one."""
    wait = WebDriverWait(driver, timeout)
    element: WebElement = wait.until(
        settled(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))),
        f"no visible element matches {css!r} after {timeout:.0f} s",
    )
    return element


def wait_for_text(
    driver: webdriver.Chrome, text: str, css: str = "body", timeout: float = WAIT_S
) -> WebElement:
    """The element matching `css` once its text contains `text` (a streamed answer, a
    status that changes after a reload by the page itself)."""
    WebDriverWait(driver, timeout).until(
        settled(expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)),
        f"{css!r} does not contain {text!r} after {timeout:.0f} s",
    )
    return driver.find_element(By.CSS_SELECTOR, css)


def artifacts_dir() -> Path:
    """Where screenshots go: MYAISERV_BROWSER_ARTIFACTS, else tests/browser/artifacts/
    (git-ignored)."""
    folder = Path(os.environ.get("MYAISERV_BROWSER_ARTIFACTS") or ARTIFACTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The whole page (not only what the viewport shows) as `<name>.png` in the artifacts
    folder. DevTools captures beyond the viewport, so the page is not laid out again at
    another height (which would stretch anything sized by `vh`)."""
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"a screenshot name is letters, digits, '.', '-' or '_': {name!r}")
    width, height = driver.execute_script(
        "const root = document.documentElement;"
        "return [Math.max(root.scrollWidth, innerWidth), Math.max(root.scrollHeight, innerHeight)];"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": width,
                "height": min(height, MAX_SHOT_HEIGHT),
                "scale": 1,
            },
        },
    )
    path = artifacts_dir() / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@dataclass(frozen=True)
class Site:
    """The console as served by a web tier: nginx's URL, and each instance's."""

    service: WebService

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.web.port}"

    def instance_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service.instance_port(name)}"

    def instance_names(self) -> list[str]:
        return self.service.instance_names()


@dataclass(frozen=True)
class Browse:
    """The test's browser on ``site``."""

    driver: webdriver.Chrome
    site: Site

    def go(self, path: str, base: str | None = None) -> None:
        """Open ``path`` on nginx (or on ``base``, an instance's URL)."""
        self.driver.get((base or self.site.url) + path)

    def login(self, user: ConsoleUser, base: str | None = None, to: str = "") -> None:
        """Log in through the form, as a person does (``to``: the page to land on, as a
        page without a session sends it); waits for the first page after it."""
        self.go(f"/console/login?next={to}" if to else "/console/login", base)
        wait_for_element(self.driver, "#email").send_keys(user.email)
        self.driver.find_element(By.ID, "password").send_keys(user.password)
        self.driver.find_element(By.CSS_SELECTOR, "form[action='/console/login'] button").click()
        wait_for_element(self.driver, "form.whoami")

    def find(self, css: str) -> WebElement:
        return wait_for_element(self.driver, css)

    def text(self, css: str = "main") -> str:
        return str(self.find(css).text)

    def check(self, name: str) -> None:
        """The page as it is now: no serious or critical accessibility violation, at the
        laptop size and on a phone, and a screenshot of each (``<name>.png``,
        ``<name>-phone.png``)."""
        axe_check(self.driver)
        screenshot(self.driver, name)
        with phone(self.driver):
            axe_check(self.driver)
            screenshot(self.driver, f"{name}-phone")
