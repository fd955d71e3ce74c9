"""Logging in to the console in a real browser, through nginx in front of two instances:
an invitation's one-time link sets the password, the login page is accessible on a laptop
and a phone, a wrong password is refused with a message and then throttled, and a session
set on one instance holds on the other."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from myaiserv.auth.ratelimit import current_window
from myaiserv.resources import Resources
from myaiserv.users.service import UserService
from tests.browser.support import WAIT_S, Browse, wait_for_text
from tests.support import ConsoleUser, TenantKey, make_user

pytestmark = pytest.mark.browser


def submit_login(browse: Browse, email: str, password: str) -> None:
    """Submit the login form and wait for the page the server answers with: leaving
    before it arrives would abort the POST, and the attempt might never be counted."""
    browse.go("/console/login")
    browse.find("#email").send_keys(email)
    browse.driver.find_element(By.ID, "password").send_keys(password)
    # A mark on this page's window: the page the server answers with has a new window
    # object without it.
    browse.driver.execute_script("window.loginPending = true")
    browse.driver.find_element(By.CSS_SELECTOR, "form[action='/console/login'] button").click()
    WebDriverWait(browse.driver, WAIT_S).until(
        lambda driver: driver.execute_script(
            "return window.loginPending === undefined && document.readyState === 'complete'"
        ),
        "the login form was not answered",
    )


def test_the_login_page_is_accessible(browse: Browse) -> None:
    browse.go("/console/login")
    assert "Log in to MyAIServ" in browse.text("h1")
    browse.check("login")


async def test_a_wrong_password_is_refused_then_throttled(
    browse: Browse, resources: Resources, tenant: TenantKey
) -> None:
    user = await make_user(resources, tenant, "viewer")
    # Failures count in fixed one-minute windows: all of them must fall in one.
    _, left_s = current_window()
    if left_s < 40:
        await asyncio.sleep(left_s + 0.5)
    submit_login(browse, user.email, "not-the-password-at-all")
    assert "Wrong email or password." in browse.text(".error")
    for _ in range(resources.settings.console.login_failures_per_account):
        submit_login(browse, user.email, "not-the-password-at-all")
    # Throttled now: even the right password waits.
    submit_login(browse, user.email, user.password)
    assert "too many failed logins" in browse.text(".error").lower()
    assert browse.driver.get_cookie("myaiserv_session") is None


async def test_logging_out_on_one_instance_ends_the_session_on_the_other(
    browse: Browse, resources: Resources, tenant: TenantKey
) -> None:
    """The cookie belongs to the host, not the port: the browser takes the same session to
    nginx and to each instance directly, and logging out on one ends it on all."""
    first, second = browse.site.instance_names()[:2]
    user = await make_user(resources, tenant, "viewer")
    browse.login(user)  # through nginx
    browse.go("/console/overview", browse.site.instance_url(first))
    assert user.email in browse.text("form.whoami")
    browse.go("/console/overview", browse.site.instance_url(second))
    kept = browse.driver.get_cookie("myaiserv_session")
    assert kept is not None and kept["httpOnly"] and kept["sameSite"] == "Lax"
    browse.find("form.whoami button").click()  # log out on the second instance
    browse.find("#email")
    assert browse.driver.get_cookie("myaiserv_session") is None
    # The old cookie put back (as a stolen copy would be): the session is gone everywhere.
    browse.driver.add_cookie({k: kept[k] for k in ("name", "value", "path", "httpOnly")})
    browse.go("/console/overview", browse.site.instance_url(first))
    assert "/console/login" in browse.driver.current_url
    assert "Log in to MyAIServ" in browse.text("h1")


async def test_an_invitation_link_sets_the_password_once(
    browse: Browse, resources: Resources, tenant: TenantKey
) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@{tenant.name}.test"
    async with resources.sessionmaker() as session, session.begin():
        link = await UserService(session, resources.settings.console).invite(
            tenant.id, email, "viewer"
        )
    target = urlsplit(link.url)
    browse.go(f"{target.path}?{target.query}")
    assert "Choose your password" in browse.text("h1")
    browse.check("set-password")
    browse.find("#password").send_keys("short")
    browse.find("form[action='/console/set-password'] button").click()
    # The browser's own check (minlength) keeps a short one from being sent.
    assert "Choose your password" in browse.text("h1")
    password = f"pw-{uuid.uuid4().hex}"
    box = browse.find("#password")
    box.clear()
    box.send_keys(password)
    browse.find("form[action='/console/set-password'] button").click()
    wait_for_text(browse.driver, "Your password is set", "main")
    browse.login(ConsoleUser(tenant, email, password, "viewer"))
    assert email in browse.text("form.whoami")
    # The link worked once.
    browse.go(f"{target.path}?{target.query}")
    browse.find("#password").send_keys(f"pw-{uuid.uuid4().hex}")
    browse.find("form[action='/console/set-password'] button").click()
    assert "link" in browse.text(".error").lower()
