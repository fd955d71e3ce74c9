"""Browser fixtures: one headless chromium for the session (starting one takes about a
second), handed to each test at the laptop viewport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver

from tests.browser.support import LAPTOP, start_chromium, use_viewport


@pytest.fixture(scope="session")
def chromium() -> Iterator[webdriver.Chrome]:
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def driver(chromium: webdriver.Chrome) -> webdriver.Chrome:
    """The session's browser, at the laptop size and without cookies (so no session),
    whatever the test before it left."""
    use_viewport(chromium, LAPTOP)
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    return chromium
