"""Logging in to the console, against the real stack: sessions in Redis, users in
PostgreSQL, the throttle's counters, the audit log."""

from __future__ import annotations

import asyncio
import re

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.audit.log import AuditQuery, find
from myaiserv.config import ConsoleSettings
from myaiserv.console.router import CSRF_COOKIE
from myaiserv.console.sessions import COOKIE, SessionStore
from myaiserv.resources import Resources
from myaiserv.users.service import UserService
from tests.support import ConsoleUser, TenantKey, console_login, csrf_field, make_user

pytestmark = pytest.mark.integration


def _session_cookie(response_headers: list[str]) -> str:
    (cookie,) = [c for c in response_headers if c.startswith(f"{COOKIE}=")]
    return cookie


async def test_login_page_is_served_under_a_strict_csp(visitor: AsyncTestClient) -> None:
    page = await visitor.get("/console/login")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["cache-control"] == "no-store"
    assert visitor.cookies.get(CSRF_COOKIE, path="/console")
    assert '<form method="post" action="/console/login"' in page.text


async def test_a_login_sets_an_http_only_lax_session_cookie_and_goes_where_asked(
    visitor: AsyncTestClient, console_user: ConsoleUser
) -> None:
    await visitor.get("/console/login")
    form = {
        "email": console_user.email.upper(),  # emails are not case-sensitive
        "password": console_user.password,
        "next": "/console/runs?q=x",
        **csrf_field(visitor),
    }
    response = await visitor.post("/console/login", data=form)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/runs?q=x"
    cookie = _session_cookie(response.headers.get_list("set-cookie"))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # served over http here; https:// public_url adds it


async def test_next_never_leaves_the_console(
    visitor: AsyncTestClient, console_user: ConsoleUser
) -> None:
    await visitor.get("/console/login")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/v1/runs"):
        form = {"email": console_user.email, "password": console_user.password, "next": target}
        response = await visitor.post("/console/login", data={**form, **csrf_field(visitor)})
        assert response.headers["location"] == "/console/", target


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    visitor: AsyncTestClient, console_user: ConsoleUser, resources: Resources
) -> None:
    await visitor.get("/console/login")
    for email in (console_user.email, "nobody@nowhere.test"):
        form = {"email": email, "password": "not the password", **csrf_field(visitor)}
        response = await visitor.post("/console/login", data=form)
        assert response.status_code == 401
        assert "Wrong email or password." in response.text
        assert not [c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE)]
    async with resources.sessionmaker() as session:
        events, _ = await find(
            session, AuditQuery(tenant_id=console_user.tenant.id, action="login.")
        )
    # The failure against the real account is its tenant's to see.
    assert [(e.action, e.outcome, e.target) for e in events] == [
        ("login.failed", "failure", f"user:{console_user.email}")
    ]


async def test_failed_logins_are_throttled_per_account_even_with_the_right_password(
    visitor: AsyncTestClient, console_user: ConsoleUser, resources: Resources
) -> None:
    limit = resources.settings.console.login_failures_per_account
    await visitor.get("/console/login")
    wrong = {"email": console_user.email, "password": "guess", **csrf_field(visitor)}
    codes = [(await visitor.post("/console/login", data=wrong)).status_code for _ in range(limit)]
    assert codes == [401] * limit
    right = {**wrong, "password": console_user.password}
    refused = await visitor.post("/console/login", data=right)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert "too many failed logins" in refused.text
    async with resources.sessionmaker() as session:
        events, _ = await find(
            session,
            AuditQuery(tenant_id=console_user.tenant.id, action="login.throttled"),
        )
    assert [e.details for e in events] == [{"scope": "account", "failures": limit}]


async def test_a_post_without_the_csrf_token_is_refused(
    visitor: AsyncTestClient, console_user: ConsoleUser
) -> None:
    await visitor.get("/console/login")
    form = {"email": console_user.email, "password": console_user.password}
    response = await visitor.post("/console/login", data=form)
    assert response.status_code == 403
    forged = await visitor.post("/console/login", data={**form, "_csrf_token": "0" * 128})
    assert forged.status_code == 403


async def test_pages_need_a_session_and_logout_ends_it(
    console: AsyncTestClient, console_user: ConsoleUser
) -> None:
    home = await console.get("/console/")
    assert home.status_code == 303 and home.headers["location"] == "/console/overview"
    session_id = console.cookies.get(COOKIE, path="/console")
    out = await console.post("/console/logout", data=csrf_field(console))
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    # Replaying the old cookie: the session is gone from Redis, not only from the browser.
    console.cookies.set(COOKIE, session_id, path="/console")
    again = await console.get("/console/")
    assert again.status_code == 303
    assert again.headers["location"] == "/console/login?next=/console"


async def test_each_login_is_a_new_session_and_ends_the_one_it_replaces(
    visitor: AsyncTestClient, console_user: ConsoleUser
) -> None:
    await console_login(visitor, console_user)
    first = visitor.cookies.get(COOKIE, path="/console")
    await console_login(visitor, console_user)
    second = visitor.cookies.get(COOKIE, path="/console")
    assert first and second and first != second
    visitor.cookies.set(COOKIE, first, path="/console")
    assert (await visitor.get("/console/")).headers["location"].startswith("/console/login")


async def test_disabling_a_user_ends_its_sessions_at_once(
    console: AsyncTestClient, console_user: ConsoleUser, resources: Resources, tenant: TenantKey
) -> None:
    other_admin = await make_user(resources, tenant, "admin")  # the tenant keeps an admin
    assert other_admin.tenant == tenant
    async with resources.sessionmaker() as session, session.begin():
        user = await UserService(session, resources.settings.console).users.get_by_email(
            console_user.email
        )
        assert user is not None
        await UserService(session, resources.settings.console).set_disabled(
            tenant.id, user.id, True
        )
    # Only PostgreSQL changed: the session in Redis is still there, and is refused.
    response = await console.get("/console/")
    assert response.headers["location"].startswith("/console/login")


async def test_a_password_link_works_once_and_a_short_password_is_refused(
    visitor: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    async with resources.sessionmaker() as session, session.begin():
        link = await UserService(session, resources.settings.console).invite(
            tenant.id, f"new@{tenant.name}.test", "viewer"
        )
    token = re.search(r"token=([\w-]+)", link.url)
    assert token is not None
    page = await visitor.get(f"/console/set-password?token={token[1]}")
    assert page.status_code == 200
    form = {"token": token[1], **csrf_field(visitor)}
    short = await visitor.post("/console/set-password", data={**form, "password": "short"})
    assert short.status_code == 400 and "password: use at least 12 characters" in short.text
    done = await visitor.post("/console/set-password", data={**form, "password": "a" * 16})
    assert done.status_code == 303 and done.headers["location"] == "/console/login?done=password"
    again = await visitor.post("/console/set-password", data={**form, "password": "b" * 16})
    assert again.status_code == 400 and "not valid any more" in again.text


async def test_sessions_end_after_the_idle_and_the_absolute_timeout(
    resources: Resources, console_user: ConsoleUser
) -> None:
    namespace = resources.settings.redis.namespace
    # Below the settings' minimum (60 s): these limits are the store's logic, not policy.
    short = ConsoleSettings.model_construct(session_idle_s=1, session_absolute_s=3600)
    idle = SessionStore(resources.redis, namespace, short)
    tenant_id = console_user.tenant.id
    user_id = await _user_id(resources, console_user.email)
    session_id = await idle.create(user_id, tenant_id)
    assert await idle.get(session_id) is not None
    await asyncio.sleep(2.5)  # Redis expires the idle key
    assert await idle.get(session_id) is None
    brief = ConsoleSettings.model_construct(session_idle_s=3600, session_absolute_s=1)
    absolute = SessionStore(resources.redis, namespace, brief)
    session_id = await absolute.create(user_id, tenant_id)
    await asyncio.sleep(1.5)
    assert await absolute.get(session_id) is None  # used or not, past the absolute limit
    assert not await resources.redis.exists(f"{namespace}:session:{session_id}")


async def _user_id(resources: Resources, email: str):
    async with resources.sessionmaker() as session:
        user = await UserService(session, resources.settings.console).users.get_by_email(email)
    assert user is not None
    return user.id
