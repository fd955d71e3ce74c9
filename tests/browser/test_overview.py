"""The overview, usage and audit pages in a real browser, served by the deployed site (two
instances, its own indexer, nginx): a login lands on the overview, which shows the runs
the site's indexer indexed and a document that failed; a new tenant is told where to
start; every page accessible on a laptop and a phone, with a screenshot of each."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.auth.service import TenantService
from myaiserv.db.index_state import settle
from myaiserv.resources import Resources
from tests.browser.support import Browse, wait_for_text
from tests.support import TenantKey, eventually, make_tenant, make_user

pytestmark = pytest.mark.browser

RUNS = [
    {
        "model": "gpt-4o-mini",
        "latency_ms": 120,
        "cost_usd": 0.02,
        "total_tokens": 300,
        "status": "ok",
    },
    {
        "model": "gpt-4o-mini",
        "latency_ms": 480,
        "cost_usd": 0.05,
        "total_tokens": 900,
        "status": "ok",
    },
    {"model": "claude-x", "latency_ms": 900, "status": "error", "error": "rate limited"},
]


async def indexed(api: AsyncTestClient, path: str) -> dict[str, Any]:
    """The record once the site's indexer has settled it."""
    got: dict[str, Any] = {}

    async def settled() -> bool:
        got.update((await api.get(path)).json())
        return bool(got["index_status"] != "pending")

    assert await eventually(settled, within=60)
    return got


async def test_a_login_lands_on_the_overview_with_the_tenants_runs(
    browse: Browse, api: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    runs = []
    for body in RUNS:
        made = await api.post("/v1/runs", json={"provider": "openai", "input": "q", **body})
        assert made.status_code == 201, made.text
        runs.append(made.json())
    doc = (await api.post("/v1/documents", json={"text": "x", "title": "Broken manual"})).json()
    for run in runs:
        await indexed(api, f"/v1/runs/{run['id']}")
    got = await indexed(api, f"/v1/documents/{doc['id']}")
    # As if its change had been dead-lettered: failed, with the reason.
    async with resources.sessionmaker() as session, session.begin():
        await settle(
            session,
            "documents",
            "failed",
            {uuid.UUID(doc["id"]): got["version"]},
            {uuid.UUID(doc["id"]): "build_error: ValueError: no text"},
        )

    browse.login(await make_user(resources, tenant, "viewer"))
    assert browse.driver.current_url.endswith("/console/overview")
    assert "3\nRequests" in browse.text("#totals")
    assert "claude-x" in browse.text("#by-model")
    failed = browse.text("#failed")
    assert "Broken manual" in failed and "build_error: ValueError: no text" in failed
    assert len(browse.driver.find_elements("css selector", "svg.chart")) == 4
    browse.check("overview")

    browse.find("a[href='/console/overview?days=30']").click()
    wait_for_text(browse.driver, "Last 30 days", ".ranges a[aria-current='page']")
    assert browse.driver.current_url.endswith("?days=30")


async def test_a_new_tenant_is_told_where_to_start(browse: Browse, resources: Resources) -> None:
    fresh = await make_tenant(resources)
    browse.login(await make_user(resources, fresh, "editor"))
    assert browse.driver.current_url.endswith("/console/overview")
    assert "Nothing here yet" in browse.text(".getting-started")
    browse.check("overview-empty")
    browse.find(".getting-started a[href='/console/documents']")


async def test_an_admin_sees_usage_and_the_audit_log(
    browse: Browse, api: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    async with resources.sessionmaker() as session, session.begin():
        await TenantService(session).set_quota(tenant.name, daily_tokens=5000, daily_cost_usd=None)
    await api.post("/v1/admin/keys", json={"name": "ci", "scopes": ["read"]})
    browse.login(await make_user(resources, tenant, "admin"))

    browse.go("/console/settings/usage")
    assert "5,000" in browse.text("#quotas")
    assert "UTC" in browse.text("#reset")
    browse.check("usage")

    browse.go("/console/settings/audit")
    events = browse.text("#events")
    assert "login.succeeded" in events and "tenant.quota_set" in events
    browse.find("#action").send_keys("login.")
    browse.find("form.filters button").click()
    browse.find("form.filters a[href='/console/settings/audit']")  # "Clear": filtered now
    assert "action=login." in browse.driver.current_url
    assert "tenant.quota_set" not in browse.text("#events")
    browse.go("/console/settings/audit")
    browse.check("audit")
