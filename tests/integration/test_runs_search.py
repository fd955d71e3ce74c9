"""POST /v1/runs/search against the real index: text, every filter, sorts, cursor pages,
aggregations checked against SQL over the same rows, tenant isolation, bad input."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import Select, func, literal, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.db.models import Run
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import free_port
from myaiserv.resources import Resources
from tests.support import TenantKey, drain, make_tenant

pytestmark = pytest.mark.integration

URL = "/v1/runs/search"
DAY0 = datetime(2025, 3, 10, tzinfo=UTC)
# Days 0..4, none on day 2: the per-day histogram must show it empty.
RUNS: list[dict[str, Any]] = [
    {"provider": "openai", "model": "gpt-4o", "status": "ok", "day": 0,
     "input": "How do I reset my password?", "output": "Click the forgot password link.",
     "latency_ms": 120, "cost_usd": 0.0012, "prompt_tokens": 100, "completion_tokens": 20,
     "prompt_name": "qa", "prompt_version": 1, "conv": "c1", "retrieved": ["A"]},
    {"provider": "openai", "model": "gpt-4o", "status": "error", "day": 0,
     "input": "Summarise the quarterly report", "error": "rate limited by upstream",
     "latency_ms": 3000, "cost_usd": 0, "prompt_tokens": 500, "completion_tokens": 0,
     "prompt_name": "summarise", "prompt_version": 2},
    {"provider": "openai", "model": "gpt-4o-mini", "status": "ok", "day": 1,
     "input": "Translate bonjour to English", "output": "hello",
     "latency_ms": 80.5, "cost_usd": 0.0001, "prompt_tokens": 10, "completion_tokens": 2,
     "prompt_name": "translate", "prompt_version": 1, "conv": "c1", "retrieved": ["B"]},
    {"provider": "anthropic", "model": "claude-sonnet", "status": "ok", "day": 1,
     "input": "Explain vector databases", "output": "They store embeddings for similarity",
     "latency_ms": 950, "cost_usd": 0.02, "prompt_tokens": 300, "completion_tokens": 200,
     "prompt_name": "qa", "prompt_version": 2, "conv": "c2", "retrieved": ["A", "B"]},
    {"provider": "anthropic", "model": "claude-sonnet", "status": "timeout", "day": 3,
     "input": "Write a poem about autumn", "latency_ms": 30000, "prompt_tokens": 40},
    {"provider": "anthropic", "model": "claude-haiku", "status": "cancelled", "day": 3,
     "input": "Stop"},
    {"provider": "local", "model": "llama-3", "status": "ok", "day": 4,
     "input": "What is the capital of France?", "output": "Paris is the capital.",
     "latency_ms": 45, "cost_usd": 0, "prompt_tokens": 12, "completion_tokens": 5,
     "prompt_name": "qa", "prompt_version": 1},
    {"provider": "local", "model": "llama-3", "status": "error", "day": 4,
     "input": "Describe kubernetes pods", "error": "CUDA out of memory",
     "latency_ms": 15, "prompt_tokens": 20, "completion_tokens": 0},
    {"provider": "openai", "model": "gpt-4o", "status": "ok", "day": 0,
     "input": "Password policy for admins?", "output": "Use at least 12 characters",
     "latency_ms": 450.25, "cost_usd": 0.0045, "prompt_tokens": 150, "completion_tokens": 40,
     "prompt_name": "qa", "prompt_version": 1, "conv": "c2", "cited": ["A"]},
    {"provider": "openai", "model": "gpt-4o-mini", "status": "ok", "day": 1,
     "input": "Hello world", "output": "Hi there <b>friend</b> & co",
     "latency_ms": 60, "cost_usd": 0.00005, "prompt_tokens": 5, "completion_tokens": 3},
    {"provider": "anthropic", "model": "claude-sonnet", "status": "ok", "day": 3,
     "input": "Compare PostgreSQL and Elasticsearch", "output": "Both store data",
     "latency_ms": 1200, "cost_usd": 0.03, "prompt_tokens": 400, "completion_tokens": 300,
     "retrieved": ["B"]},
    {"provider": "openai", "model": "gpt-4o", "status": "error", "day": 4,
     "input": "Generate an invoice", "error": "context length exceeded",
     "latency_ms": 200, "cost_usd": 0.05, "prompt_tokens": 9000, "completion_tokens": 0},
]  # fmt: skip


@dataclass
class Seeded:
    """What was stored, by run id, for computing expected answers independently of ES."""

    runs: dict[str, dict[str, Any]]
    convs: dict[str, str]
    docs: dict[str, str]
    ids: list[str] = field(default_factory=list)  # in RUNS order

    def where(self, keep: Callable[[dict[str, Any]], bool]) -> set[str]:
        return {rid for rid, r in self.runs.items() if keep(r)}


async def seed(
    client: AsyncTestClient, headers: dict[str, str], resources: Resources, docs: dict[str, str]
) -> Seeded:
    convs = {
        name: (
            await client.post("/v1/conversations", json={"title": name}, headers=headers)
        ).json()["id"]
        for name in ("c1", "c2")
    }
    seeded = Seeded(runs={}, convs=convs, docs=docs)
    times: dict[str, datetime] = {}
    for i, spec in enumerate(RUNS):
        body = {k: v for k, v in spec.items() if k not in ("day", "conv", "retrieved", "cited")}
        if "conv" in spec:
            body["conversation_id"] = convs[spec["conv"]]
        body["retrieved_chunk_ids"] = [f"{docs[d]}:{i}:{i:016x}" for d in spec.get("retrieved", [])]
        body["cited_chunk_ids"] = [f"{docs[d]}:0:{'f' * 16}" for d in spec.get("cited", [])]
        resp = await client.post("/v1/runs", json=body, headers=headers)
        assert resp.status_code == 201, resp.text
        run = resp.json()
        times[run["id"]] = DAY0 + timedelta(days=spec["day"], hours=i, minutes=i)
        seeded.runs[run["id"]] = {**spec, **run, "created_at": times[run["id"]]}
        seeded.ids.append(run["id"])
    # Spread the runs over days (created_at is set by the database); indexed afterwards.
    async with resources.sessionmaker() as session, session.begin():
        for rid, at in times.items():
            await session.execute(update(Run).where(Run.id == rid).values(created_at=at))
    await drain(resources)
    return seeded


@pytest.fixture
async def data(api: AsyncTestClient, tenant: TenantKey, resources: Resources) -> Seeded:
    docs = {"A": str(uuid.uuid4()), "B": str(uuid.uuid4())}
    return await seed(api, tenant.headers, resources, docs)


async def search(api: AsyncTestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post(URL, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def ids(api: AsyncTestClient, body: dict[str, Any]) -> set[str]:
    found = await search(api, {"size": 200, **body})
    assert found["total"] == len(found["hits"])
    return {h["id"] for h in found["hits"]}


async def test_text_search_over_input_output_and_error(api: AsyncTestClient, data: Seeded):
    found = await search(api, {"query": "password"})
    assert {h["id"] for h in found["hits"]} == {data.ids[0], data.ids[8]}
    assert all(h["score"] > 0 for h in found["hits"])
    marked = {h["id"]: h["highlights"] for h in found["hits"]}
    assert set(marked[data.ids[0]]) == {"input", "output"} and set(marked[data.ids[8]]) == {"input"}
    assert "<mark>password</mark>" in marked[data.ids[0]]["output"][0]
    assert "input" not in found["hits"][0] and "output" not in found["hits"][0]

    assert await ids(api, {"query": "Paris"}) == {data.ids[6]}, "words of the output only"
    assert await ids(api, {"query": "upstream"}) == {data.ids[1]}, "words of the error"
    assert await ids(api, {"query": "kubernetes paris"}) == {data.ids[6], data.ids[7]}

    hit = (await search(api, {"query": "friend", "fields": ["input", "output"]}))["hits"][0]
    assert hit["input"] == "Hello world" and hit["output"] == "Hi there <b>friend</b> & co"
    fragment = hit["highlights"]["output"][0]
    assert "&lt;b&gt;<mark>friend</mark>&lt;" in fragment and "&amp; co" in fragment
    assert "<b>" not in fragment, "text is HTML-escaped; only <mark> is markup"

    run = data.runs[hit["id"]]
    for key in ("provider", "model", "status", "latency_ms", "total_tokens", "prompt_tokens"):
        assert hit[key] == run[key], key
    assert hit["cost_usd"] == pytest.approx(run["cost_usd"])
    assert "embedding" not in hit and "metadata" not in hit
    assert datetime.fromisoformat(hit["created_at"]) == run["created_at"]

    plain = (await search(api, {"filters": {"model": ["llama-3"]}}))["hits"]
    assert plain and all(h["score"] is None and h["highlights"] is None for h in plain)
    lineage = (await search(api, {"filters": {"document_id": data.docs["A"]}}))["hits"]
    assert len(lineage) == 3 and all(data.docs["A"] in h["document_ids"] for h in lineage)


async def test_query_syntax_characters_are_plain_text(api: AsyncTestClient, data: Seeded):
    for query in ['"unbalanced', "?", "^boost", "[1 TO 2]", "{x}", "a\\b/c", "&& || !",
                  "<script>", "*", "~", ":", "()", "\\", "/"]:  # fmt: skip
        resp = await api.post(URL, json={"query": query, "aggregations": True})
        assert resp.status_code == 200, (query, resp.text)
        assert {h["id"] for h in resp.json()["hits"]} <= set(data.ids)
    assert await ids(api, {"query": "pass*"}) == set(), "no wildcards"
    assert await ids(api, {"query": "passwrd~2"}) == set(), "no fuzzy operator"
    assert await ids(api, {"query": "(password)!"}) == {data.ids[0], data.ids[8]}
    assert await ids(api, {"query": "input: capital"}) == {data.ids[6]}, "no field syntax"


async def test_each_filter_narrows_to_exactly_its_runs(api: AsyncTestClient, data: Seeded):
    c1, c2 = data.convs["c1"], data.convs["c2"]
    docs = data.docs

    def lat(r: dict[str, Any]) -> float:
        return r.get("latency_ms") if r.get("latency_ms") is not None else float("nan")

    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
        ({"provider": ["anthropic"]}, lambda r: r["provider"] == "anthropic"),
        ({"provider": ["anthropic", "local"]}, lambda r: r["provider"] != "openai"),
        ({"model": ["gpt-4o-mini"]}, lambda r: r["model"] == "gpt-4o-mini"),
        ({"status": ["error"]}, lambda r: r["status"] == "error"),
        ({"status": ["timeout", "cancelled"]}, lambda r: r["status"] in ("timeout", "cancelled")),
        ({"prompt_name": ["qa"]}, lambda r: r.get("prompt_name") == "qa"),
        ({"prompt_version": 2}, lambda r: r.get("prompt_version") == 2),
        ({"conversation_id": c1}, lambda r: r.get("conv") == "c1"),
        ({"conversation_id": c2}, lambda r: r.get("conv") == "c2"),
        (
            {"document_id": docs["A"]},
            lambda r: "A" in r.get("retrieved", []) + r.get("cited", []),
        ),
        ({"document_id": docs["B"]}, lambda r: "B" in r.get("retrieved", [])),
        ({"document_id": str(uuid.uuid4())}, lambda r: False),
        ({"latency_ms": {"gte": 120, "lte": 950}}, lambda r: 120 <= lat(r) <= 950),
        ({"latency_ms": {"gt": 120, "lt": 950}}, lambda r: 120 < lat(r) < 950),
        ({"cost_usd": {"gt": 0.01}}, lambda r: (r.get("cost_usd") or 0) > 0.01),
        ({"cost_usd": {"lte": 0}}, lambda r: r.get("cost_usd") == 0),
        ({"total_tokens": {"gte": 500}}, lambda r: (r["total_tokens"] or 0) >= 500),
        ({"total_tokens": {"gte": 12, "lte": 12}}, lambda r: r["total_tokens"] == 12),
        (
            {"created_at": {"gte": (DAY0 + timedelta(days=3)).isoformat()}},
            lambda r: r["day"] >= 3,
        ),
        (
            {"created_at": {"gte": "2025-03-11T00:00:00Z", "lt": "2025-03-13T00:00:00+00:00"}},
            lambda r: r["day"] == 1,
        ),
    ]
    for filters, keep in cases:
        expected = data.where(keep)
        assert await ids(api, {"filters": filters}) == expected, filters

    combined = {"provider": ["openai"], "status": ["error"], "latency_ms": {"gte": 1000}}
    assert await ids(api, {"filters": combined}) == {data.ids[1]}
    lineage = {"prompt_name": ["qa"], "document_id": docs["A"], "conversation_id": c2}
    assert await ids(api, {"filters": lineage}) == {data.ids[3], data.ids[8]}
    assert await ids(api, {"query": "password", "filters": {"conversation_id": c1}}) == {
        data.ids[0]
    }
    assert await ids(api, {"filters": {"status": ["ok"], "model": ["llama-3"]}}) == {data.ids[6]}
    assert await ids(api, {"filters": {"provider": [], "model": []}}) == set(data.ids)


def expected_order(data: Seeded, key: str, descending: bool) -> list[str]:
    """Sorted by ``key``, runs without it last, ties by run id ascending."""
    present = [rid for rid in data.ids if data.runs[rid].get(key) is not None]
    missing = sorted(rid for rid in data.ids if data.runs[rid].get(key) is None)
    sign = -1 if descending else 1

    def value(rid: str) -> float:
        v = data.runs[rid][key]
        return sign * (v.timestamp() if isinstance(v, datetime) else v)

    present.sort(key=lambda rid: (value(rid), rid))
    return present + missing


async def pages(api: AsyncTestClient, body: dict[str, Any], size: int) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = []
    cursor, total = None, None
    while True:
        page = await search(api, {**body, "size": size, **({"cursor": cursor} if cursor else {})})
        assert total is None or page["total"] == total, "total counts every match, every page"
        total = page["total"]
        assert len(page["hits"]) <= size
        hits += page["hits"]
        cursor = page["next_cursor"]
        if cursor is None:
            assert len(hits) == total
            return hits


@pytest.mark.parametrize(
    ("sort", "key"), [("latency", "latency_ms"), ("cost", "cost_usd"), ("time", "created_at")]
)
@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_sorts_and_cursor_pages(
    api: AsyncTestClient, data: Seeded, sort: str, key: str, order: str
):
    expected = expected_order(data, key, order == "desc")
    whole = await search(api, {"sort": sort, "order": order, "size": 100})
    assert [h["id"] for h in whole["hits"]] == expected
    assert whole["next_cursor"] is None
    for size in (1, 5):
        paged = await pages(api, {"sort": sort, "order": order}, size)
        assert [h["id"] for h in paged] == expected, "each run exactly once, in order"


async def test_default_sorts_and_relevance_pages(api: AsyncTestClient, data: Seeded):
    newest_first = expected_order(data, "created_at", True)
    assert [h["id"] for h in (await search(api, {}))["hits"]] == newest_first
    assert [h["id"] for h in await pages(api, {}, 4)] == newest_first

    query = {"query": "the password capital report of memory"}
    ranked = (await search(api, query))["hits"]
    scores = [h["score"] for h in ranked]
    assert len(ranked) >= 4 and scores == sorted(scores, reverse=True)
    assert [h["id"] for h in await pages(api, query, 2)] == [h["id"] for h in ranked]

    by_cost = await search(api, {**query, "sort": "cost"})
    costs = [h["cost_usd"] for h in by_cost["hits"] if h["cost_usd"] is not None]
    assert costs == sorted(costs, reverse=True) and all(h["score"] for h in by_cost["hits"])


async def test_cursor_belongs_to_its_search(api: AsyncTestClient, data: Seeded):
    first = await search(api, {"sort": "latency", "size": 2, "filters": {"provider": ["openai"]}})
    cursor = first["next_cursor"]
    assert cursor
    for changed in (
        {"sort": "cost", "filters": {"provider": ["openai"]}},
        {"sort": "latency", "order": "asc", "filters": {"provider": ["openai"]}},
        {"sort": "latency", "filters": {"provider": ["anthropic"]}},
        {"sort": "latency", "query": "password", "filters": {"provider": ["openai"]}},
    ):
        resp = await api.post(URL, json={**changed, "cursor": cursor})
        assert resp.status_code == 422, changed
        assert resp.json()["errors"][0]["field"] == "cursor"
    # Another page size, or asking for aggregations, is the same search.
    same = {"sort": "latency", "size": 3, "filters": {"provider": ["openai"]}, "cursor": cursor}
    assert (await api.post(URL, json={**same, "aggregations": True})).status_code == 200


async def sql_stats(
    resources: Resources, tenant_id: uuid.UUID, group: Any | None, *where: Any
) -> dict[Any, dict[str, Any]]:
    """The same figures from PostgreSQL; percentiles with ``percentile_disc``, and the
    sorted latencies for the nearest-rank p95 that Elasticsearch's HDR histogram uses."""
    columns = [
        func.count().label("count"),
        func.count().filter(Run.status == "error").label("errors"),
        func.coalesce(func.sum(Run.prompt_tokens), 0).label("prompt_tokens"),
        func.coalesce(func.sum(Run.completion_tokens), 0).label("completion_tokens"),
        func.coalesce(func.sum(Run.total_tokens), 0).label("total_tokens"),
        func.coalesce(func.sum(Run.cost_usd), 0).label("cost_usd"),
        func.percentile_disc(0.5).within_group(Run.latency_ms).label("latency_p50_ms"),
        func.percentile_disc(0.95).within_group(Run.latency_ms).label("latency_p95_ms"),
        func.array_agg(aggregate_order_by(Run.latency_ms, Run.latency_ms))
        .filter(Run.latency_ms.is_not(None))
        .label("latencies"),
    ]
    stmt: Select[Any] = select(*columns).where(Run.tenant_id == tenant_id, *where)
    if group is not None:
        stmt = stmt.add_columns(group.label("key")).group_by(group)
    else:
        stmt = stmt.add_columns(literal("all").label("key"))
    async with resources.sessionmaker() as session:
        rows = (await session.execute(stmt)).mappings().all()
    return {row["key"]: dict(row) for row in rows}


def nearest_rank(values: list[float], p: float) -> float:
    """HDR histograms (ES 9) take the value at rank round(p·n), halves up; PostgreSQL's
    ``percentile_disc`` the one at rank ceil(p·n). They agree for p50, and for p95 unless
    the fraction of 0.95·n is below one half (11 runs: rank 10 against 11)."""
    return values[max(1, math.floor(p * len(values) + 0.5)) - 1]


def assert_stats(es: dict[str, Any], pg: dict[str, Any]) -> None:
    assert es["count"] == pg["count"]
    assert es["errors"] == pg["errors"]
    assert es["error_rate"] == pytest.approx(pg["errors"] / pg["count"])
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert es[name] == pg[name], name
    assert es["cost_usd"] == pytest.approx(float(pg["cost_usd"]), abs=1e-9)
    if pg["latency_p50_ms"] is None:
        assert es["latency_p50_ms"] is None and es["latency_p95_ms"] is None
        return
    assert es["latency_p50_ms"] == pytest.approx(float(pg["latency_p50_ms"]), rel=0.01)
    latencies = [float(v) for v in pg["latencies"]]
    p95 = nearest_rank(latencies, 0.95)
    assert es["latency_p95_ms"] == pytest.approx(p95, rel=0.01)
    disc = latencies.index(float(pg["latency_p95_ms"]))
    assert p95 in latencies[disc - 1 : disc + 1], "percentile_disc's rank, or one below"


@pytest.mark.parametrize(
    ("filters", "where"),
    [
        ({}, []),
        ({"provider": ["openai", "anthropic"]}, [Run.provider.in_(["openai", "anthropic"])]),
        ({"latency_ms": {"lte": 1000}}, [Run.latency_ms <= 1000]),
    ],
)
async def test_aggregations_match_sql(
    api: AsyncTestClient,
    tenant: TenantKey,
    resources: Resources,
    data: Seeded,
    filters: dict[str, Any],
    where: list[Any],
):
    found = await search(api, {"filters": filters, "size": 0, "aggregations": True})
    assert found["hits"] == [] and found["next_cursor"] is None
    aggs = found["aggregations"]

    totals = (await sql_stats(resources, tenant.id, None, *where))["all"]
    assert found["total"] == totals["count"]
    assert_stats(aggs["totals"], totals)

    per_model = await sql_stats(resources, tenant.id, Run.model, *where)
    assert {b["model"] for b in aggs["by_model"]} == set(per_model)
    assert [b["count"] for b in aggs["by_model"]] == sorted(
        (b["count"] for b in aggs["by_model"]), reverse=True
    )
    for bucket in aggs["by_model"]:
        assert_stats(bucket, per_model[bucket["model"]])
    assert aggs["other_models_count"] == 0

    day = func.date_trunc("day", func.timezone("UTC", Run.created_at))
    per_day = {
        k.date().isoformat(): v
        for k, v in (await sql_stats(resources, tenant.id, day, *where)).items()
    }
    days = [b["day"] for b in aggs["by_day"]]
    first = min(per_day)
    assert days == [
        (datetime.fromisoformat(first) + timedelta(days=i)).date().isoformat()
        for i in range(len(days))
    ], "consecutive days, empty ones included"
    assert days[-1] == max(per_day)
    for bucket in aggs["by_day"]:
        if bucket["day"] in per_day:
            assert_stats(bucket, per_day[bucket["day"]])
        else:
            assert bucket["count"] == 0 and bucket["error_rate"] is None
            assert bucket["latency_p95_ms"] is None and bucket["cost_usd"] == 0
    if not filters:
        assert "2025-03-12" in days and "2025-03-12" not in per_day

    # A page further on: the same totals and aggregations.
    page1 = await search(api, {"filters": filters, "size": 2})
    page2 = await search(
        api,
        {"filters": filters, "size": 2, "cursor": page1["next_cursor"], "aggregations": True},
    )
    assert page2["aggregations"] == aggs and page2["total"] == found["total"]

    only = await search(api, {"filters": filters, "size": 0, "aggregations": ["by_day"]})
    assert {k for k, v in only["aggregations"].items() if v is not None} == {"by_day"}


async def test_aggregations_follow_the_query(api: AsyncTestClient, data: Seeded):
    found = await search(api, {"query": "password", "size": 0, "aggregations": ["totals"]})
    totals = found["aggregations"]["totals"]
    expected = [data.runs[data.ids[0]], data.runs[data.ids[8]]]
    assert totals["count"] == found["total"] == 2 and totals["errors"] == 0
    assert totals["total_tokens"] == sum(r["total_tokens"] for r in expected)
    assert totals["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in expected))


async def test_another_tenants_runs_never_show(
    api: AsyncTestClient, client: AsyncTestClient, resources: Resources, data: Seeded
):
    other = await make_tenant(resources)
    twin = await seed(client, other.headers, resources, data.docs)  # the same runs, and docs
    mine = set(data.ids)
    for body in (
        {},
        {"query": "password capital"},
        {"filters": {"document_id": data.docs["A"]}},
        {"filters": {"conversation_id": twin.convs["c1"]}},
    ):
        found = await search(api, {**body, "size": 200, "aggregations": True})
        assert {h["id"] for h in found["hits"]} <= mine
        assert found["aggregations"]["totals"]["count"] == found["total"] == len(found["hits"])
        assert sum(b["count"] for b in found["aggregations"]["by_model"]) == found["total"]
    all_mine = await search(api, {"size": 0, "aggregations": True})
    assert all_mine["total"] == len(RUNS)
    assert all_mine["aggregations"]["totals"]["count"] == len(RUNS)
    assert sum(b["count"] for b in all_mine["aggregations"]["by_day"]) == len(RUNS)

    theirs = await client.post(URL, json={"size": 1}, headers=other.headers)
    assert theirs.json()["total"] == len(RUNS)
    assert theirs.json()["hits"][0]["id"] in set(twin.ids)
    # Their cursor is not ours: it names their tenant's search.
    resp = await api.post(URL, json={"size": 1, "cursor": theirs.json()["next_cursor"]})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "cursor"
    # A tenant in the body is refused, never used.
    smuggled = {"filters": {"tenant_id": str(other.id)}}
    assert (await api.post(URL, json=smuggled)).status_code == 400

    reader = await make_tenant(resources, scopes=["read"])
    assert (await client.post(URL, json={}, headers=reader.headers)).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"filters": {"temperature": [1]}}, 400, "`temperature`"),
        ({"sortby": "time"}, 400, "`sortby`"),
        ({"filters": {"latency_ms": {"min": 1}}}, 400, "`min`"),
        ({"filters": {"latency_ms": {"gte": "fast"}}}, 400, "filters.latency_ms.gte"),
        ({"filters": {"latency_ms": {"gte": 9, "lte": 1}}}, 422, "filters.latency_ms.gte"),
        ({"filters": {"cost_usd": {"gt": 1, "lt": 1}}}, 422, "filters.cost_usd.gt"),
        ({"filters": {"total_tokens": {"gte": 1.5}}}, 400, "filters.total_tokens.gte"),
        ({"filters": {"created_at": {"gte": "last week"}}}, 400, "filters.created_at.gte"),
        ({"filters": {"created_at": {"lt": "2025-01-01T00:00:00"}}}, 422, "filters.created_at.lt"),
        ({"filters": {"status": ["done"]}}, 422, "filters.status[0]"),
        ({"filters": {"provider": "openai"}}, 400, "filters.provider"),
        ({"filters": {"conversation_id": "nope"}}, 400, "filters.conversation_id"),
        ({"filters": {"document_id": 7}}, 400, "filters.document_id"),
        ({"size": 201}, 422, "size"),
        ({"size": -1}, 422, "size"),
        ({"size": "ten"}, 400, "size"),
        ({"cursor": "not-a-cursor"}, 422, "cursor"),
        ({"cursor": "eyJhIjpbXX0"}, 422, "cursor"),
        ({"sort": "random"}, 400, "sort"),
        ({"sort": "relevance"}, 422, "sort"),
        ({"order": "up"}, 400, "order"),
        ({"fields": ["embedding"]}, 400, "fields"),
        ({"aggregations": ["p99"]}, 400, "aggregations"),
        ({"query": 5}, 400, "query"),
    ],
)
async def test_bad_input_names_the_field(
    api: AsyncTestClient, body: dict[str, Any], status: int, field: str
):
    resp = await api.post(URL, json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert field in resp.json()["detail"], resp.json()
    if status == 422:
        assert resp.json()["errors"][0]["field"] == field


async def test_not_json_or_not_an_object(api: AsyncTestClient):
    for body in ([], "text", None):
        assert (await api.post(URL, json=body)).status_code == 400
    resp = await api.post(URL, content=b"{", headers={"content-type": "application/json"})
    assert resp.status_code == 400


async def test_elasticsearch_down_is_503(settings: Settings, embedder: Embedder, tenant: TenantKey):
    down = settings.model_copy(update={"es_url": [f"http://127.0.0.1:{free_port()}"]})
    async with AsyncTestClient(app=create_app(down, embedder=embedder)) as client:
        resp = await client.post(URL, json={}, headers=tenant.headers)
    assert resp.status_code == 503, resp.text
    assert resp.json()["dependency"] == "elasticsearch" and "Retry-After" in resp.headers


async def test_a_missing_runs_index_is_503_naming_the_fix(
    settings: Settings, embedder: Embedder, tenant: TenantKey
):
    prefix = f"missing-{uuid.uuid4()}"
    missing = settings.model_copy(
        update={"es": settings.es.model_copy(update={"index_prefix": prefix})}
    )
    async with AsyncTestClient(app=create_app(missing, embedder=embedder)) as client:
        resp = await client.post(URL, json={}, headers=tenant.headers)
    assert resp.status_code == 503, resp.text
    assert "myaiserv index init" in resp.json()["detail"] and "Retry-After" in resp.headers
