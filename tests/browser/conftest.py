"""Browser fixtures: one headless chromium for the session (starting one takes about a
second), handed to each test at the laptop viewport; the console served for real (two
instances behind nginx) for it to browse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver

from myaiserv.config import Settings
from myaiserv.resources import Resources
from myaiserv.stack.manager import Stack
from tests.browser.support import (
    LAPTOP,
    SITE_SECRET,
    Browse,
    Site,
    start_chromium,
    use_viewport,
)
from tests.support import web_tier


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


@pytest.fixture(scope="package")
def site(
    stack: Stack, settings: Settings, resources: Resources, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The console as deployed: two instances, an indexer and nginx in front, on this test
    session's database, Redis and indices. Its URL is nginx's; ``instance_url(name)``
    reaches one instance directly. It lives as long as the browser tests only: its indexer
    would otherwise index what later tests expect to find pending."""
    root = tmp_path_factory.mktemp("site")
    service = web_tier(stack, settings, root, 2, MYAISERV_CONSOLE__SECRET=SITE_SECRET)
    try:
        service.start()
        yield Site(service)
    finally:
        service.stop()


@pytest.fixture
def browse(driver: webdriver.Chrome, site: Site) -> Browse:
    """The browser pointed at ``site``: ``browse.go("/console/runs")``, ``browse.login(user)``."""
    return Browse(driver, site)
