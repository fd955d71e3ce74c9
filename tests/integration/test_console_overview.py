"""The console's overview, usage and audit pages against the real stack: the overview's
figures are the runs search's aggregations of runs logged through the API, its backlog
and failed items the records' index states; a new tenant is told where to start; no page
shows another tenant's numbers; the usage page shows the quotas; the audit page filters
and pages the log with the API's cursor; only admins reach the two settings pages."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from myaiserv.audit import log as audit
from myaiserv.auth.service import TenantService
from myaiserv.db.index_state import settle
from myaiserv.db.models import Document, Run
from myaiserv.quotas.service import ORIGIN
from myaiserv.resources import Resources
from tests.support import (
    ConsoleUser,
    TenantKey,
    console_login,
    drain,
    make_tenant,
    make_user,
)

pytestmark = pytest.mark.integration


def run_body(model: str, **more: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": model, "input": "What is RAG?", "status": "ok", **more}


async def log_runs(api: AsyncTestClient, tenant: TenantKey) -> list[dict[str, Any]]:
    bodies = [
        run_body("gpt-4o-mini", latency_ms=100, cost_usd=0.25, total_tokens=10),
        run_body("gpt-4o-mini", latency_ms=300, cost_usd=0.5, total_tokens=20),
        run_body("claude-x", latency_ms=200, cost_usd=1.0, status="error", error="boom"),
    ]
    made = []
    for body in bodies:
        resp = await api.post("/v1/runs", json=body, headers=tenant.headers)
        assert resp.status_code == 201, resp.text
        made.append(resp.json())
    return made


def card(html: str, label: str) -> str:
    """The value of the card labelled ``label``."""
    found = re.search(
        r'<div class="value">([^<]*)</div><div class="label">' + re.escape(label) + "</div>", html
    )
    assert found, f"no card {label!r}"
    return found.group(1)


async def fail(resources: Resources, kind: str, entity_id: str, reason: str) -> None:
    """Settle the record's current version as failed, as the indexer does when it
    dead-letters a change."""
    model = Document if kind == "documents" else Run
    eid = uuid.UUID(entity_id)
    async with resources.sessionmaker() as session, session.begin():
        version = await session.scalar(select(model.version).where(model.id == eid))
        assert version is not None
        await settle(session, kind, "failed", {eid: version}, {eid: reason})  # type: ignore[arg-type]


async def test_the_overview_shows_the_runs_aggregations(
    api: AsyncTestClient, console: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    await log_runs(api, tenant)
    await drain(resources)
    resp = await console.get("/console/overview")
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert card(html, "Requests") == "3"
    assert card(html, "Errors") == "1 (33.3%)"
    assert card(html, "p50 latency") == "200 ms"
    assert card(html, "p95 latency") == "300 ms"
    assert card(html, "Tokens") == "30"
    assert card(html, "Cost") == "1.7500 USD"
    # One bar a day for the 7 days, today's holding the runs.
    today = datetime.now(UTC).date().isoformat()
    week_ago = (datetime.now(UTC).date() - timedelta(days=6)).isoformat()
    assert html.count('<rect class="bar"') == 3 * 7  # requests, latency, cost
    assert html.count('<rect class="bar bad"') == 7  # errors
    assert f"<title>{today}: 3</title>" in html
    assert f"<title>{week_ago}: 0</title>" in html
    assert f"<title>{today}: 1.75 USD</title>" in html
    assert 'href="/console/runs?model=gpt-4o-mini">gpt-4o-mini</a>' in html
    assert 'href="/console/runs?model=claude-x">claude-x</a>' in html
    assert 'href="/console/overview?days=7" aria-current="page"' in html

    month = await console.get("/console/overview", params={"days": 30})
    assert month.status_code == 200
    assert month.text.count('<rect class="bar bad"') == 30
    assert 'href="/console/overview?days=30" aria-current="page"' in month.text
    assert card(month.text, "Requests") == "3"
    bad = await console.get("/console/overview", params={"days": 12})
    assert bad.status_code == 422 and "days: must be one of 7, 30, 90" in bad.text


async def test_the_overview_counts_the_backlog_and_lists_failed_items_with_the_reason(
    api: AsyncTestClient, console: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    doc = await api.post(
        "/v1/documents", json={"text": "a broken one", "title": "<script>alert(1)</script>"}
    )
    [run, *_] = await log_runs(api, tenant)
    await drain(resources)
    await fail(resources, "documents", doc.json()["id"], "build_error: <b>too big</b>")
    await fail(resources, "runs", run["id"], "mapping_error: bad field")
    # Written and not indexed yet: the backlog.
    for n in range(2):
        await api.post("/v1/documents", json={"text": f"waiting {n}"})
    await api.post("/v1/runs", json=run_body("late"))

    html = (await console.get("/console/overview")).text
    assert card(html, "Documents waiting to be indexed") == "2"
    assert card(html, "Runs waiting to be indexed") == "1"
    assert card(html, "Documents failed") == "1"
    assert card(html, "Runs failed") == "1"
    failed = html[html.index('<table id="failed">') :]
    assert f'href="/console/documents/{doc.json()["id"]}"' in failed
    assert f'href="/console/runs/{run["id"]}">gpt-4o-mini (openai)</a>' in failed
    assert "build_error: &lt;b&gt;too big&lt;/b&gt;" in failed
    assert "mapping_error: bad field" in failed
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in failed
    assert "<script>alert" not in html

    await drain(resources)
    html = (await console.get("/console/overview")).text
    assert card(html, "Documents waiting to be indexed") == "0"
    assert card(html, "Runs waiting to be indexed") == "0"


async def test_a_new_tenant_is_told_where_to_start(console: AsyncTestClient) -> None:
    resp = await console.get("/console/overview")
    assert resp.status_code == 200
    html = resp.text
    assert "Nothing here yet" in html
    for link in ("/console/documents", "/console/playground", "/console/runs"):
        assert f'href="{link}"' in html
    assert "POST /v1/runs" in html
    assert 'id="totals"' not in html


async def test_the_landing_page_after_login_is_the_overview(
    visitor: AsyncTestClient, console_user: ConsoleUser
) -> None:
    login = await console_login(visitor, console_user)
    assert login.headers["location"] == "/console/"
    home = await visitor.get("/console/")
    assert (home.status_code, home.headers["location"]) == (303, "/console/overview")


async def test_a_second_tenant_sees_none_of_the_first_tenants_numbers(
    api: AsyncTestClient, console: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    runs = await log_runs(api, tenant)
    await drain(resources)
    await fail(resources, "runs", runs[0]["id"], "mapping_error: theirs")
    await api.post("/v1/documents", json={"text": "pending of the first"})
    assert card((await console.get("/console/overview")).text, "Requests") == "3"

    other = await make_tenant(resources)
    await api.post("/v1/runs", json=run_body("mine-only"), headers=other.headers)
    await drain(resources)
    await console_login(console, await make_user(resources, other, "viewer"))
    html = (await console.get("/console/overview")).text
    assert card(html, "Requests") == "1"
    assert card(html, "Documents waiting to be indexed") == "0"
    assert card(html, "Runs failed") == "0"
    assert "mine-only" in html
    assert "gpt-4o-mini" not in html and "claude-x" not in html
    assert runs[0]["id"] not in html and "theirs" not in html


async def test_the_usage_page_shows_the_quotas_and_todays_use(
    api: AsyncTestClient, console: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    async with resources.sessionmaker() as session, session.begin():
        await TenantService(session).set_quota(tenant.name, daily_tokens=1000, daily_cost_usd=2.5)
    # A chat call MyAIServ made (its runs carry the origin), and one a client logged.
    await api.post(
        "/v1/runs", json=run_body("m", total_tokens=250, cost_usd=0.5, metadata={"origin": ORIGIN})
    )
    await api.post("/v1/runs", json=run_body("m", total_tokens=999, cost_usd=9.0))
    api_usage = (await api.get("/v1/usage")).json()

    resp = await console.get("/console/settings/usage")
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert api_usage["tokens"] == 250
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(\w+)</th>(.*?)</tr>", html, re.DOTALL)
    cells = {name: re.findall(r"<td>(.*?)</td>", row, re.DOTALL) for name, row in rows}
    assert cells["Tokens"][:3] == ["250", "1,000", "750"]
    assert cells["Cost"][:3] == ["0.5000 USD", "2.5000 USD", "2.0000 USD"]
    assert 'value="25"' in cells["Tokens"][3] and 'value="20"' in cells["Cost"][3]
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    assert f"<strong>{tomorrow} 00:00 UTC</strong>" in html
    assert f"Today, {api_usage['day']} (UTC)" in html

    async with resources.sessionmaker() as session, session.begin():
        await TenantService(session).set_quota(tenant.name, daily_tokens=0, daily_cost_usd=0)
    html = (await console.get("/console/settings/usage")).text
    assert html.count("Unlimited") == 2


async def add_events(resources: Resources, tenant: TenantKey, n: int, **kw: Any) -> None:
    async with resources.sessionmaker() as session, session.begin():
        for i in range(n):
            audit.add(session, tenant_id=tenant.id, target=f"target-{i}", **kw)


def actions(html: str) -> list[str]:
    """The actions of the events listed, in order."""
    return re.findall(r"<td><code>([^<]+)</code></td>", html)


async def test_the_audit_page_lists_filters_and_pages_the_log(
    console: AsyncTestClient, tenant: TenantKey, resources: Resources, console_user: ConsoleUser
) -> None:
    await add_events(resources, tenant, 55, action=audit.KEY_CREATED, actor="user:alice")
    await add_events(
        resources,
        tenant,
        2,
        action=audit.KEY_REVOKED,
        actor="user:<b>bob</b>",
        outcome="failure",
        details={"why": "<script>x</script>"},
    )
    other = await make_tenant(resources)
    await add_events(resources, other, 1, action=audit.KEY_REVOKED, actor="user:theirs")

    first = await console.get("/console/settings/audit")
    assert first.status_code == 200, first.text
    # Newest first, 50 a page.
    assert sum(a.startswith("key.") for a in actions(first.text)) == 50
    assert "user:&lt;b&gt;bob&lt;/b&gt;" in first.text
    assert "&lt;script&gt;x&lt;/script&gt;" in first.text
    assert "user:theirs" not in first.text
    next_href = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert next_href
    second = await console.get(next_href.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    # The rest of ours, then the admin's login, and the tenant's and user's creation.
    assert actions(second.text)[:8] == [audit.KEY_CREATED] * 7 + [audit.LOGIN]
    assert actions(second.text)[-1] == audit.TENANT_CREATED
    assert 'rel="next"' not in second.text and ">First page</a>" in second.text

    # Filters: an action family, an exact action with an outcome, an actor, a time range.
    fam = await console.get("/console/settings/audit", params={"action": "key."})
    assert sum(
        a.startswith("key.") for a in actions(fam.text)
    ) == 50 and "login.succeeded" not in actions(fam.text)
    revoked = await console.get(
        "/console/settings/audit", params={"action": "key.revoked", "outcome": "failure"}
    )
    assert actions(revoked.text).count("key.revoked") == 2
    assert 'value="key.revoked"' in revoked.text and 'value="failure" selected' in revoked.text
    by_actor = await console.get(
        "/console/settings/audit", params={"actor": f"user:{console_user.email}"}
    )
    assert audit.LOGIN in actions(by_actor.text)
    assert audit.KEY_CREATED not in actions(by_actor.text)
    today = datetime.now(UTC).date()
    in_range = await console.get(
        "/console/settings/audit",
        params={"action": "key.revoked", "since": today.isoformat(), "until": today.isoformat()},
    )
    assert actions(in_range.text).count("key.revoked") == 2
    before = await console.get(
        "/console/settings/audit", params={"until": (today - timedelta(days=1)).isoformat()}
    )
    assert "No event matches these filters." in before.text

    # Paging keeps the filters.
    paged = await console.get("/console/settings/audit", params={"action": "key.created"})
    href = re.search(r'<a href="([^"]+)" rel="next">', paged.text)
    assert href and "action=key.created" in href.group(1)
    rest = await console.get(href.group(1).replace("&amp;", "&"))
    assert actions(rest.text) == [audit.KEY_CREATED] * 6  # 5 of ours, the tenant's first key

    # Bad filters: the form again, the error beside the field.
    bad = await console.get(
        "/console/settings/audit", params={"since": "yesterday", "outcome": "maybe"}
    )
    assert bad.status_code == 400
    assert 'id="since-error"' in bad.text and 'id="outcome-error"' in bad.text
    assert 'value="yesterday"' in bad.text


async def test_only_admins_reach_the_usage_and_audit_pages(
    visitor: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    for path in ("/console/settings/usage", "/console/settings/audit"):
        resp = await visitor.get(path)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/console/login")
    for role in ("viewer", "editor"):
        await console_login(visitor, await make_user(resources, tenant, role))
        for path in ("/console/settings/usage", "/console/settings/audit"):
            assert (await visitor.get(path)).status_code == 403, (role, path)
        assert (await visitor.get("/console/overview")).status_code == 200


async def test_index_counts_are_the_tenants_own(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    """The services' counts behind the backlog: every state named, only this tenant's."""
    from myaiserv.documents.service import DocumentService
    from myaiserv.runs.service import RunService

    other = await make_tenant(resources)
    await api.post("/v1/runs", json=run_body("x"), headers=other.headers)
    made = await log_runs(api, tenant)
    await drain(resources)
    await fail(resources, "runs", made[0]["id"], "x")
    await api.post("/v1/runs", json=run_body("y"))
    async with resources.sessionmaker() as session:
        runs = await RunService(session, tenant.id).index_counts()
        docs = await DocumentService(session, tenant.id, resources.settings).index_counts()
        total = await session.scalar(select(func.count(Run.id)).where(Run.tenant_id == tenant.id))
    assert runs == {"pending": 1, "indexed": 2, "failed": 1}
    assert sum(runs.values()) == total
    assert docs == {"pending": 0, "indexed": 0, "failed": 0}
