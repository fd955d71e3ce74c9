"""The console's runs pages against the real stack: runs logged through the API, indexed
as the indexer does, then searched, filtered, paged and opened in the console; another
tenant's runs stay invisible and user text is escaped."""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.resources import Resources
from tests.support import ConsoleUser, TenantKey, console_login, drain, make_tenant, make_user

pytestmark = pytest.mark.integration

XSS_INPUT = "quokka <script>alert('x')</script> <img src=x onerror=alert(1)>"


async def log_run(
    api: AsyncTestClient, headers: dict[str, str] | None = None, **fields: Any
) -> UUID:
    body: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-test",
        "input": "hello",
        "status": "ok",
        **fields,
    }
    response = await api.post("/v1/runs", json=body, headers=headers or {})
    assert response.status_code == 201, response.text
    return UUID(response.json()["id"])


def run_ids(html: str) -> list[str]:
    return re.findall(r'<a href="/console/runs/([0-9a-f-]{36})"', html)


async def test_search_by_a_word_filters_facets_and_aggregates(
    api: AsyncTestClient, console: AsyncTestClient, resources: Resources
) -> None:
    wombat = await log_run(
        api,
        input="where do wombats sleep",
        model="model-a",
        latency_ms=120,
        prompt_tokens=10,
        completion_tokens=5,
        cost_usd=0.25,
    )
    failed = await log_run(
        api,
        input="why is the sky blue",
        model="model-b",
        status="error",
        error="upstream 500",
        latency_ms=900,
    )
    await drain(resources)

    page = await console.get("/console/runs", params={"q": "wombats"})
    assert page.status_code == 200
    assert run_ids(page.text) == [str(wombat)]
    assert "<mark>wombats</mark>" in page.text  # the API's highlight, re-sanitised
    assert "Totals of the 1 matching run<" in page.text

    everything = (await console.get("/console/runs")).text
    assert set(run_ids(everything)) == {str(wombat), str(failed)}
    # Totals, error rate, a chart by day and by model, the model facet with counts.
    assert "50.0 %" in everything
    assert "Runs per day" in everything and "Runs by model" in everything
    assert '<svg class="chart"' in everything
    assert re.search(
        r'href="/console/runs\?model=model-b">model-b</a><span class="muted">1<', everything
    )

    only_errors = await console.get("/console/runs", params={"status": "error"})
    assert run_ids(only_errors.text) == [str(failed)]
    slow = await console.get("/console/runs", params={"latency_min": "500"})
    assert run_ids(slow.text) == [str(failed)]
    by_model = await console.get("/console/runs", params=[("model", "model-a")])
    assert run_ids(by_model.text) == [str(wombat)]
    assert 'aria-current="true">✓ model-a</a>' in by_model.text
    costly = await console.get("/console/runs", params={"sort": "cost", "order": "asc"})
    assert run_ids(costly.text) == [str(wombat), str(failed)]  # no cost comes last

    nothing = await console.get("/console/runs", params={"q": "zebra-crossing-nowhere"})
    assert nothing.status_code == 200
    assert "No run matches this search" in nothing.text


async def test_pages_follow_the_api_cursor(
    api: AsyncTestClient, console: AsyncTestClient, resources: Resources
) -> None:
    ids = [str(await log_run(api, input=f"paging run {i}")) for i in range(30)]
    await drain(resources)
    first = await console.get("/console/runs", params={"q": "paging"})
    seen = run_ids(first.text)
    assert len(seen) == 25
    (next_url,) = re.findall(r'<a href="([^"]+)" rel="next">', first.text)
    second = await console.get(next_url.replace("&amp;", "&"))
    assert second.status_code == 200
    assert "First page" in second.text and 'rel="next"' not in second.text
    seen += run_ids(second.text)
    assert sorted(seen) == sorted(ids)


async def test_bad_filters_are_a_400_naming_the_field(console: AsyncTestClient) -> None:
    for params, field in (
        ({"latency_min": "fast"}, "latency_min"),
        ({"conversation_id": "not-a-uuid"}, "conversation_id"),
        ({"status": "exploded"}, "status"),
        ({"cost_min": "5", "cost_max": "1"}, "cost_min"),
        ({"sort": "relevance"}, "sort"),  # relevance needs words
        ({"cursor": "garbage"}, "cursor"),
    ):
        page = await console.get("/console/runs", params=params)
        assert page.status_code == 400, params
        assert f"Invalid search: {field}:" in page.text
        assert f'id="{field}-error"' in page.text or field == "cursor"


async def test_an_empty_tenant_is_told_how_to_log_runs(console: AsyncTestClient) -> None:
    page = await console.get("/console/runs")
    assert page.status_code == 200
    assert "No runs yet" in page.text and "POST /v1/runs" in page.text
    assert 'href="/console/playground"' in page.text


async def test_runs_citing_a_document(
    api: AsyncTestClient, console: AsyncTestClient, resources: Resources
) -> None:
    created = await api.post("/v1/documents", json={"title": "Marsupial facts", "text": "x"})
    assert created.status_code == 201, created.text
    doc = created.json()["id"]
    citing = await log_run(
        api,
        input="cites it",
        cited_chunk_ids=[f"{doc}:0:abc"],
        retrieved_chunk_ids=[f"{doc}:0:abc", f"{doc}:1:def"],
    )
    await log_run(api, input="cites another", cited_chunk_ids=[f"{uuid4()}:0:abc"])
    await drain(resources)
    page = await console.get("/console/runs", params={"document_id": doc})
    assert run_ids(page.text) == [str(citing)]

    run = await console.get(f"/console/runs/{citing}")
    assert run.status_code == 200
    assert f'href="/console/chunks/{doc}:0:abc">Marsupial facts, passage 0</a>' in run.text
    assert f'href="/console/chunks/{doc}:1:def">Marsupial facts, passage 1</a>' in run.text
    assert run.text.count('<span class="badge ok">cited</span>') == 1
    assert f'href="/console/runs?document_id={doc}"' in run.text


async def test_a_run_page_shows_the_run(
    api: AsyncTestClient, console: AsyncTestClient, resources: Resources
) -> None:
    conversation = (await api.post("/v1/conversations", json={"title": "c"})).json()["id"]
    earlier = await log_run(api, input="first question", conversation_id=conversation)
    run_id = await log_run(
        api,
        input=json.dumps(
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
        ),
        output="hello back",
        status="error",
        error="rate limited upstream",
        model="model-z",
        provider="acme",
        prompt_name="support bot",
        prompt_version=3,
        latency_ms=1234.5,
        time_to_first_token_ms=210,
        prompt_tokens=11,
        completion_tokens=7,
        cost_usd=0.00123,
        conversation_id=conversation,
        metadata={"team": "search"},
        started_at="2026-01-02T03:04:05Z",
        finished_at="2026-01-02T03:04:07Z",
    )
    before = await console.get(f"/console/runs/{run_id}")
    assert '<span class="badge pending">pending</span>' in before.text
    await drain(resources)
    page = await console.get(f"/console/runs/{run_id}")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "<h3>system</h3><pre>be brief</pre>",
        "<h3>user</h3><pre>hi there</pre>",
        '<pre class="output">hello back</pre>',
        '<pre class="error run-error">rate limited upstream</pre>',
        "<dd>model-z</dd>",
        "<dd>acme</dd>",
        '<a href="/console/prompts/support%20bot">support bot</a> version 3',
        "1,234 ms",
        "210 ms",
        "18 (11 + 7)",
        "$0.001230",
        "2026-01-02 03:04:05 UTC",
        "2026-01-02 03:04:07 UTC",
        "&#34;team&#34;: &#34;search&#34;",
        f'href="/console/playground?conversation={conversation}"',
        f'href="/console/runs/{earlier}"',
        '<span class="badge indexed">indexed</span>',
        "This run used no passages",
    ):
        assert expected in text, expected


async def test_user_text_is_escaped(
    api: AsyncTestClient, console: AsyncTestClient, resources: Resources
) -> None:
    run_id = await log_run(
        api,
        input=XSS_INPUT,
        output="<script>alert('out')</script>",
        error="<img src=x onerror=alert(2)>",
        status="error",
        model="<b>model</b>",
        metadata={"<script>": "<img src=x onerror=alert(3)>"},
    )
    await drain(resources)
    for page in (
        await console.get(f"/console/runs/{run_id}"),
        await console.get("/console/runs", params={"q": "quokka"}),
        await console.get("/console/runs"),
    ):
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "<b>model</b>" not in page.text
        assert "&lt;script&gt;alert(" in page.text or "&lt;script&gt;" in page.text
    searched = (await console.get("/console/runs", params={"q": "quokka"})).text
    assert "<mark>quokka</mark> &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in searched


async def test_another_tenants_runs_are_invisible(
    api: AsyncTestClient, client: AsyncTestClient, resources: Resources
) -> None:
    mine = await log_run(api, input="a secret platypus")
    await drain(resources)
    other = await make_tenant(resources)
    stranger = await make_user(resources, other, "admin")
    client.headers.pop("Authorization", None)
    client.follow_redirects = False
    assert (await console_login(client, stranger)).status_code == 303
    assert (await client.get(f"/console/runs/{mine}")).status_code == 404
    search = await client.get("/console/runs", params={"q": "platypus"})
    assert search.status_code == 200 and str(mine) not in search.text
    assert "No run matches" in search.text


async def test_a_viewer_can_read_runs(
    api: AsyncTestClient, client: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    run_id = await log_run(api, input="viewer reads this")
    await drain(resources)
    viewer: ConsoleUser = await make_user(resources, tenant, "viewer")
    client.headers.pop("Authorization", None)
    client.follow_redirects = False
    assert (await console_login(client, viewer)).status_code == 303
    assert str(run_id) in (await client.get("/console/runs", params={"q": "viewer"})).text
    assert (await client.get(f"/console/runs/{run_id}")).status_code == 200


async def test_pages_need_a_session(visitor: AsyncTestClient) -> None:
    response = await visitor.get("/console/runs?q=x")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")
