# ruff: noqa: E501  (parametrized bad-input cases read best one per line)
"""POST /v1/search against real Elasticsearch, PostgreSQL and Redis: modes, fusion,
filters, facets (checked against PostgreSQL), highlights, tenant isolation, cursor paging
under concurrent writes, cache invalidation, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from myaiserv.config import Settings
from myaiserv.db.models import Document
from myaiserv.embeddings.model import Embedder
from myaiserv.resources import Resources
from myaiserv.search import fusion
from tests.support import TenantKey, drain, make_tenant

pytestmark = pytest.mark.integration

CORPUS = [
    {
        "title": "Photosynthesis",
        "text": "Photosynthesis in green plants converts sunlight into chemical energy.",
        "tags": ["biology", "plants"],
        "content_type": "text/plain",
        "source": "bio/photosynthesis.txt",
        "metadata": {"year": 2001, "lang": "en", "reviewed": True, "score": 4.5},
    },
    {
        "title": "Cells",
        "text": "The mitochondria is the powerhouse of the cell; cells divide by mitosis.",
        "tags": ["biology"],
        "content_type": "text/markdown",
        "source": "bio/cells.md",
        "metadata": {"year": 1999, "lang": "en", "reviewed": False, "score": 3.0},
    },
    {
        "title": "Quarterly results",
        "text": "Quarterly revenue grew thanks to cloud subscriptions and lower churn.",
        "tags": ["finance"],
        "content_type": "text/plain",
        "source": "fin/q3.txt",
        "metadata": {"year": 2020, "lang": "de", "published": "2020-10-01"},
    },
    {
        "title": "Charging",
        "text": "Vehicles with electric motors recharge their batteries at charging stations.",
        "tags": ["transport"],
        "content_type": "text/plain",
        "source": "mobility/ev.txt",
        "metadata": {"year": 2021, "lang": "en"},
    },
    {
        "title": "Filing codes",
        "text": "Form zorblax-7 lists the filing codes for quarterly tax declarations.",
        "tags": ["finance", "tax"],
        "content_type": "text/html",
        "source": "fin/zorblax.html",
        "metadata": {"year": 2020, "lang": "en", "reviewed": True},
    },
    {
        "title": "Escaping",
        "text": "Markup such as <script>alert(1)</script> must never reach a browser raw.",
        "tags": ["security"],
        "content_type": "text/plain",
        "source": "sec/xss.txt",
        "metadata": {"year": 2018, "lang": "en"},
    },
]


async def load(api: AsyncTestClient, resources: Resources, docs=CORPUS) -> dict[str, str]:
    """Store ``docs`` through the API and index them; title -> document id."""
    resp = await api.post("/v1/documents/batch", json={"documents": docs})
    assert resp.status_code == 201, resp.text
    await drain(resources)
    return {d["title"]: d["id"] for d in resp.json()["items"]}


async def search(api: AsyncTestClient, **body: Any) -> dict[str, Any]:
    resp = await api.post("/v1/search", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def titles(result: dict[str, Any]) -> list[str]:
    return [h["fields"].get("title") for h in result["hits"]]


@pytest.fixture
async def corpus(api: AsyncTestClient, resources: Resources) -> dict[str, str]:
    return await load(api, resources)


async def test_each_mode_finds_the_expected_document(api: AsyncTestClient, corpus):
    bm25 = await search(api, query="mitochondria", mode="bm25", kinds=["documents"])
    assert titles(bm25) == ["Cells"]
    assert bm25["hits"][0]["ranks"] == {"bm25": 1}  # the lists that ran

    # No shared word: only the embedding can connect the query to the document.
    vector = await search(api, query="automobile", mode="vector", kinds=["documents"], size=1)
    assert titles(vector) == ["Charging"]

    hybrid = await search(api, query="how do plants make energy from light", kinds=["documents"])
    assert titles(hybrid)[0] == "Photosynthesis"
    # App-side stemming: "declaration" matches "declarations", "filings" matches "filing".
    stemmed = await search(api, query="filings declaration", mode="bm25", kinds=["documents"])
    assert titles(stemmed) == ["Filing codes"]


async def test_hybrid_fuses_hits_found_by_one_list_only(api: AsyncTestClient, corpus):
    result = await search(
        api, query="automobile zorblax", mode="hybrid", fusion="rrf", kinds=["documents"], size=2
    )
    ranks = {h["fields"]["title"]: h["ranks"] for h in result["hits"]}
    # BM25 finds only the form (exact token); the kNN window (2) holds the vehicles page.
    assert ranks["Filing codes"]["bm25"] == 1
    assert ranks["Charging"]["vector"] is not None and ranks["Charging"]["bm25"] is None
    for hit in result["hits"]:
        expected = sum(1 / (60 + r) for r in hit["ranks"].values() if r is not None)
        assert hit["score"] == pytest.approx(expected, rel=1e-5)

    # Weights per list: with BM25's at 0 the fused order is the kNN order.
    weighted = await search(
        api, query="automobile zorblax", kinds=["documents"], weights={"bm25": 0, "vector": 1}
    )
    vector_ranks = [h["ranks"]["vector"] for h in weighted["hits"]]
    assert vector_ranks == list(range(1, len(CORPUS) + 1))


async def test_linear_fusion_sums_each_lists_normalised_scores(api: AsyncTestClient, corpus):
    body = {"query": "automobile zorblax", "kinds": ["documents"], "size": 10}
    lists = {name: (await search(api, **body, mode=name))["hits"] for name in ("bm25", "vector")}
    for normalizer in ("minmax", "zscore"):
        result = await search(api, **body, fusion="linear", normalizer=normalizer)
        # Each list's scores as the single-list searches return them, normalised as
        # the fusion says, a hit missing from a list at that list's lowest.
        norms = {}
        for name, hits in lists.items():
            scaled = fusion.normalised([h["score"] for h in hits], normalizer)
            norms[name] = ({h["id"]: v for h, v in zip(hits, scaled, strict=True)}, min(scaled))
        for hit in result["hits"]:
            expected = sum(by_id.get(hit["id"], floor) for by_id, floor in norms.values())
            assert hit["score"] == pytest.approx(expected, abs=1e-4), normalizer
            assert set(hit["ranks"]) == set(hit["scores"]) == {"bm25", "vector"}
        scores = [h["score"] for h in result["hits"]]
        assert scores == sorted(scores, reverse=True)
        assert {h["id"] for h in result["hits"]} == {
            h["id"] for hits in lists.values() for h in hits
        }
    # The default fusion is linear, min-max (checked against the sums above), not ranks.
    default = (await search(api, **body))["hits"]
    minmax = (await search(api, **body, fusion="linear", normalizer="minmax"))["hits"]
    assert [(h["id"], h["score"]) for h in default] == [(h["id"], h["score"]) for h in minmax]
    top = default[0]
    assert top["score"] != pytest.approx(
        sum(1 / (60 + r) for r in top["ranks"].values() if r), rel=1e-3
    )


async def test_chat_retrieval_takes_the_fusion_too(api: AsyncTestClient, corpus):
    body = {
        "model": "myaiserv-rag",
        "messages": [{"role": "user", "content": "automobile zorblax"}],
        "retrieval": {"fusion": "linear", "k": 3},
    }
    linear = await api.post("/v1/chat/completions", json=body)
    assert linear.status_code == 200, linear.text
    refused = await api.post(
        "/v1/chat/completions",
        json={**body, "retrieval": {"fusion": "linear", "mode": "bm25"}},
    )
    assert refused.status_code == 400 and "fusion" in refused.text


async def test_filters_and_facets_match_postgres(
    api: AsyncTestClient, resources: Resources, tenant: TenantKey, corpus
):
    async def pg_count(*where) -> int:
        async with resources.sessionmaker() as session:
            return await session.scalar(
                select(func.count(Document.id)).where(Document.tenant_id == tenant.id, *where)
            )

    everything = await search(
        api,
        kinds=["documents"],
        filters={"created_at": {"gte": "2000-01-01T00:00:00Z"}},
        facets=["tags", "content_type", "metadata.lang", "kind", "type"],
        histogram={"field": "created_at", "interval": "day"},
        size=100,
    )
    assert everything["total"]["value"] == await pg_count()
    tags = {b["value"]: b["count"] for b in everything["facets"]["tags"]}
    for tag, count in tags.items():
        assert count == await pg_count(Document.tags.contains([tag])), tag
    assert sum(tags.values()) == sum(len(d["tags"]) for d in CORPUS)
    types = {b["value"]: b["count"] for b in everything["facets"]["content_type"]}
    for content_type, count in types.items():
        assert count == await pg_count(Document.content_type == content_type)
    langs = {b["value"]: b["count"] for b in everything["facets"]["metadata.lang"]}
    assert langs == {"en": 5, "de": 1}
    assert everything["facets"]["kind"] == [{"value": "documents", "count": len(CORPUS)}]
    assert sum(b["count"] for b in everything["histogram"]) == len(CORPUS)

    def run(filters, **extra):
        return search(api, kinds=["documents"], filters=filters, size=100, **extra)

    assert sorted(titles(await run({"tags": ["finance", "tax"]}))) == ["Filing codes"]
    assert sorted(titles(await run({"tags": ["finance"]}))) == ["Filing codes", "Quarterly results"]
    assert sorted(titles(await run({"content_type": ["text/markdown", "text/html"]}))) == [
        "Cells",
        "Filing codes",
    ]
    assert titles(await run({"source": ["fin/q3.txt"]})) == ["Quarterly results"]
    years = await run({"metadata": {"year": {"gte": 2000, "lt": 2021}}})
    assert sorted(titles(years)) == [
        "Escaping",
        "Filing codes",
        "Photosynthesis",
        "Quarterly results",
    ]
    assert sorted(titles(await run({"metadata": {"reviewed": True}}))) == [
        "Filing codes",
        "Photosynthesis",
    ]
    assert titles(await run({"metadata": {"score": {"gt": 4.0}}})) == ["Photosynthesis"]
    assert titles(await run({"metadata": {"published": {"gte": "2020-09-01"}}})) == [
        "Quarterly results"
    ]
    both = await run(
        {"tags": ["biology"], "metadata": {"lang": ["en"], "year": {"lte": 2000}}},
        facets=["tags"],
    )
    assert titles(both) == ["Cells"]
    assert {b["value"]: b["count"] for b in both["facets"]["tags"]} == {"biology": 1}

    # Filters with text: the facet counts are of the search's hits, still tenant-bound.
    finance = await search(
        api,
        query="quarterly",
        mode="bm25",
        kinds=["documents"],
        filters={"tags": ["finance"]},
        facets=["tags"],
    )
    assert sorted(titles(finance)) == ["Filing codes", "Quarterly results"]
    assert {b["value"]: b["count"] for b in finance["facets"]["tags"]} == {"finance": 2, "tax": 1}


async def test_a_document_counts_once_in_facets_however_many_chunks_match(
    api: AsyncTestClient, resources: Resources
):
    long_text = "\n\n".join(
        f"Section {i}. Glaciers carve valleys; moraines mark where glacier ice stood. " * 12
        for i in range(12)
    )
    await load(api, resources, [{"title": "Glaciers", "text": long_text, "tags": ["geo"]}])
    result = await search(
        api, query="glacier moraines", mode="bm25", kinds=["documents"], facets=["tags"], size=50
    )
    assert len(result["hits"]) > 1  # several chunks matched
    assert result["facets"]["tags"] == [{"value": "geo", "count": 1}]
    collapsed = await search(
        api, query="glacier moraines", kinds=["documents"], collapse=True, size=50
    )
    assert len(collapsed["hits"]) == 1


async def test_hits_carry_no_full_text_or_vectors_unless_asked(api: AsyncTestClient, corpus):
    plain = await search(api, query="mitochondria", kinds=["documents"], size=1)
    fields = plain["hits"][0]["fields"]
    assert "text" not in fields and "embedding" not in fields and "tenant_id" not in fields
    assert fields["source"] == "bio/cells.md"
    asked = await search(
        api, query="mitochondria", kinds=["documents"], size=1, fields=["text", "embedding"]
    )
    fields = asked["hits"][0]["fields"]
    assert "mitochondria" in fields["text"] and len(fields["embedding"]) == 384


async def test_highlights_mark_terms_and_escape_html(api: AsyncTestClient, corpus):
    result = await search(api, query="script browser", mode="bm25", kinds=["documents"])
    (hit,) = result["hits"]
    snippet = " ".join(hit["highlights"]["text"])
    assert "<mark>browser</mark>" in snippet
    assert "&lt;" in snippet and "<script>" not in snippet


async def test_other_kinds_are_searchable(api: AsyncTestClient, resources: Resources):
    prompt = await api.post(
        "/v1/prompts",
        json={"name": "summarise-ticket", "template": "Summarise this support ticket: {ticket}"},
    )
    assert prompt.status_code == 201, prompt.text
    conv = (await api.post("/v1/conversations", json={"title": "billing question"})).json()
    msg = await api.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"role": "user", "content": "Why was my invoice charged twice?"},
    )
    assert msg.status_code == 201, msg.text
    run = await api.post(
        "/v1/runs",
        json={
            "provider": "openai",
            "model": "gpt-4o-mini",
            "status": "ok",
            "input": "Translate the invoice into French",
            "output": "Traduire la facture",
        },
    )
    assert run.status_code == 201, run.text
    await drain(resources)
    result = await search(api, query="invoice", mode="bm25", facets=["type"])
    types = {h["type"] for h in result["hits"]}
    assert types == {"message", "run"}
    assert {b["value"] for b in result["facets"]["type"]} == {"message", "run"}
    prompts = await search(api, query="summarise support ticket", kinds=["prompts"])
    assert prompts["hits"][0]["fields"]["name"] == "summarise-ticket"
    runs = await search(api, query="invoice", kinds=["runs"], filters={"model": ["gpt-4o-mini"]})
    assert [h["id"] for h in runs["hits"]] == [run.json()["id"]]


async def test_tenants_never_see_each_other(api: AsyncTestClient, resources: Resources, corpus):
    other = await make_tenant(resources)
    as_other = other.headers
    resp = await api.post("/v1/documents/batch", json={"documents": CORPUS}, headers=as_other)
    assert resp.status_code == 201
    await drain(resources)
    body = {"query": "mitochondria", "mode": "bm25", "kinds": ["documents"], "facets": ["tags"]}
    mine = await api.post("/v1/search", json=body)
    theirs = await api.post("/v1/search", json=body, headers=as_other)
    # Same request from another tenant: a page of its own, never the first tenant's.
    assert mine.headers["x-cache"] == theirs.headers["x-cache"] == "miss"
    my_ids = {h["fields"]["document_id"] for h in mine.json()["hits"]}
    their_ids = {h["fields"]["document_id"] for h in theirs.json()["hits"]}
    assert my_ids and their_ids and not my_ids & their_ids
    assert my_ids <= set(corpus.values())
    facets = {b["value"]: b["count"] for b in mine.json()["facets"]["tags"]}
    assert facets == {"biology": 1}  # the other tenant's copy is not counted
    again = await api.post("/v1/search", json=body, headers=as_other)
    assert again.headers["x-cache"] == "hit"
    assert {h["fields"]["document_id"] for h in again.json()["hits"]} == their_ids
    browse = await api.post(
        "/v1/search", json={"kinds": ["documents"], "filters": {"tags": ["biology"]}}
    )
    assert {h["fields"]["document_id"] for h in browse.json()["hits"]} <= set(corpus.values())


async def test_cursor_pages_every_hit_once_while_documents_are_added(
    api: AsyncTestClient, resources: Resources
):
    docs = [
        {"title": f"Note {i}", "text": f"Harbour logbook entry {i}: tides, ships and cargo."}
        for i in range(23)
    ]
    await load(api, resources, docs)
    for mode in ("bm25", "hybrid", "vector"):
        seen: list[str] = []
        body: dict[str, Any] = {"query": "harbour logbook", "mode": mode, "size": 5}
        body["kinds"] = ["documents"]
        page = await search(api, **body)
        added = False
        while True:
            seen += [h["id"] for h in page["hits"]]
            if not added:  # new matching documents, searchable before the next page
                await load(api, resources, [
                    {"title": f"Late {mode} {i}", "text": f"Harbour logbook {mode} entry {i}."}
                    for i in range(4)
                ])  # fmt: skip
                added = True
            if not page["next_cursor"]:
                break
            page = await search(api, **body, cursor=page["next_cursor"])
        assert len(seen) == len(set(seen)), mode
        assert len(seen) == 23 + (4 * ["bm25", "hybrid", "vector"].index(mode)), mode
    # bm25 goes on past its window (here 7 hits) within a point in time opened by the first
    # page past it: every hit once, the window's, then the rest (with one added while the
    # window was paged); every page reports the first page's total.
    body = {"query": "harbour logbook", "mode": "bm25", "size": 3, "window": 7}
    page = await search(api, **body, kinds=["documents"])
    await load(api, resources, [{"title": "Later", "text": "Harbour logbook, later."}])
    seen, names = [], []
    while True:
        seen += [h["id"] for h in page["hits"]]
        names += titles(page)
        assert page["total"] == {"value": 35, "relation": "eq"}
        if not page["next_cursor"]:
            break
        page = await search(api, **body, kinds=["documents"], cursor=page["next_cursor"])
    assert len(seen) == len(set(seen)) == 36 and "Later" in names[7:]
    # Browsing (no text) pages too, newest first.
    browse = await search(api, kinds=["documents"], filters={"type": ["chunk"]}, size=50)
    assert browse["total"]["value"] == 23 + 12 + 1


async def test_cached_page_is_not_served_after_a_newer_write(
    api: AsyncTestClient, resources: Resources
):
    marker = f"kumquat{uuid.uuid4().hex[:6]}"
    await load(api, resources, [{"title": "First", "text": f"{marker} orchard report"}])
    body = {"query": marker, "mode": "bm25", "kinds": ["documents"]}
    first = await api.post("/v1/search", json=body)
    assert first.headers["x-cache"] == "miss"
    cached = await api.post("/v1/search", json={**body, "query": f"  {marker.upper()} "})
    assert cached.headers["x-cache"] == "hit" and cached.json() == first.json()
    bypass = await api.post("/v1/search", json=body, headers={"Cache-Control": "no-cache"})
    assert bypass.headers["x-cache"] == "bypass"

    await load(api, resources, [{"title": "Second", "text": f"{marker} harvest notes"}])
    after = await api.post("/v1/search", json=body)
    assert after.headers["x-cache"] == "miss"
    assert sorted(titles(after.json())) == ["First", "Second"]
    # Another kind's write does not invalidate a documents-only page.
    again = await api.post("/v1/search", json=body)
    assert again.headers["x-cache"] == "hit"
    await api.post("/v1/conversations", json={"title": "unrelated"})
    await drain(resources)
    assert (await api.post("/v1/search", json=body)).headers["x-cache"] == "hit"


async def test_deployments_sharing_redis_keep_their_caches_apart(
    api: AsyncTestClient,
    resources: Resources,
    settings: Settings,
    embedder: Embedder,
    tenant: TenantKey,
):
    """Two deployments on one Redis database, with their own namespaces, over the same
    indices: a page one cached is not served by the other."""
    from myaiserv.app import create_app

    marker = f"quince{uuid.uuid4().hex[:6]}"
    await load(api, resources, [{"title": "Only", "text": f"{marker} preserves"}])
    body = {"query": marker, "mode": "bm25", "kinds": ["documents"]}
    assert (await api.post("/v1/search", json=body)).headers["x-cache"] == "miss"
    assert (await api.post("/v1/search", json=body)).headers["x-cache"] == "hit"
    other = settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"namespace": f"{marker}-other"})}
    )
    async with AsyncTestClient(app=create_app(other, embedder=embedder)) as client:
        first = await client.post("/v1/search", json=body, headers=tenant.headers)
        assert first.headers["x-cache"] == "miss"
        assert titles(first.json()) == ["Only"]
        again = await client.post("/v1/search", json=body, headers=tenant.headers)
        assert again.headers["x-cache"] == "hit"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   ", "kinds": ["documents"]}, "query"),
        ({"query": "x", "kinds": ["images"]}, "kinds[0]"),
        ({"query": "x", "kinds": []}, "kinds"),
        ({"query": "x", "filters": {"metadata": {"colour": "red"}}}, "filters.metadata.colour"),
        ({"query": "x", "filters": {"metadata": {"year": "recent"}}}, "filters.metadata.year"),
        ({"query": "x", "filters": {"metadata": {"year": {"gte": 5, "lte": 1}}}}, "filters.metadata.year"),
        ({"query": "x", "filters": {"metadata": {"lang": {"gte": "a"}}}}, "filters.metadata.lang"),
        ({"query": "x", "filters": {"created_at": {"gte": "2024-01-02T00:00:00Z", "lt": "2024-01-01T00:00:00Z"}}}, "filters.created_at"),
        ({"query": "x", "kinds": ["runs"], "filters": {"content_type": ["text/plain"]}}, "filters.content_type"),
        ({"query": "x", "filters": {"tags": [""]}}, "filters.tags[0]"),
        ({"query": "x", "facets": ["colour"]}, "facets[0]"),
        ({"query": "x", "facets": ["metadata.score"]}, "facets[0]"),
        ({"query": "x", "fields": ["tenant_id"]}, "fields[0]"),
        ({"query": "x", "size": 1000}, "size"),
        ({"query": "x", "size": 0}, "size"),
        ({"query": "x", "cursor": "not-a-cursor"}, "cursor"),
        ({"query": "x", "weights": {"bm25": 0, "vector": 0}}, "weights"),
        ({"query": "x", "fusion": "linear", "rrf_k": 10}, "rrf_k"),
        ({"query": "x", "fusion": "rrf", "normalizer": "zscore"}, "normalizer"),
        ({"query": "x", "mode": "vector", "fusion": "rrf"}, "fusion"),
        ({"query": "x" * 9000}, "query"),
        ({"query": "a\u0000b"}, "query"),
    ],
)  # fmt: skip
async def test_bad_input_is_a_4xx_naming_the_field(api: AsyncTestClient, body, field):
    resp = await api.post("/v1/search", json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert field in resp.text


@pytest.mark.parametrize("body", [
    {"query": "x", "mode": "semantic"},
    {"query": "x", "fusion": "sum"},
    {"query": "x", "fusion": "linear", "normalizer": "l2"},
    {"query": "x", "filters": {"colour": ["red"]}},
    {"query": "x", "filters": {"tags": "biology"}},
    {"query": 5},
])  # fmt: skip
async def test_malformed_bodies_are_4xx(api: AsyncTestClient, body):
    resp = await api.post("/v1/search", json=body)
    assert 400 <= resp.status_code < 500, resp.text


async def test_cursor_from_another_search_is_refused(api: AsyncTestClient, corpus):
    page = await search(api, query="the", mode="bm25", kinds=["documents"], size=1)
    assert page["next_cursor"]
    resp = await api.post(
        "/v1/search",
        json={"query": "cells", "mode": "bm25", "kinds": ["documents"], "cursor": page["next_cursor"]},
    )  # fmt: skip
    assert resp.status_code == 422 and "cursor" in resp.text


@pytest.mark.parametrize(
    "text", ['"*?~^:()[]{}\\/', "AND OR NOT", "title:(x", "a" * 1999, "word " * 1500, "!!!"]
)
async def test_query_syntax_characters_are_just_text(api: AsyncTestClient, corpus, text):
    for mode in ("bm25", "vector", "hybrid"):
        resp = await api.post("/v1/search", json={"query": text, "mode": mode})
        assert resp.status_code == 200, resp.text


async def test_search_needs_a_key(client: AsyncTestClient):
    resp = await client.post("/v1/search", json={"query": "x"})
    assert resp.status_code == 401


async def test_an_index_built_with_a_model_not_installed_here_is_refused_with_a_503(
    settings, embedder, resources: Resources, tenant: TenantKey
):
    """The app side of the index's _meta: a search embeds its query with the model that
    built the index; one this machine cannot load is a 503 naming the fix (a query of
    another model would silently return nonsense)."""
    from myaiserv.app import create_app
    from myaiserv.embeddings.model import ModelInfo
    from myaiserv.search.indices import IndexManager

    prefix = f"{settings.es.index_prefix}-other"
    other = ModelInfo("some-other-model", resources.indices.model.dims, 256)
    manager = IndexManager(resources.es, prefix, other, resources.indices.options)
    await manager.ensure_all()
    try:
        mismatched = settings.model_copy(
            update={"es": settings.es.model_copy(update={"index_prefix": prefix})}
        )
        async with AsyncTestClient(app=create_app(mismatched, embedder=embedder)) as client:
            resp = await client.post(
                "/v1/search", json={"query": "anything"}, headers=tenant.headers
            )
            assert resp.status_code == 503, resp.text
            assert "some-other-model" in resp.text and "models install" in resp.text
            metrics = await client.get("/metrics")
            assert "myaiserv_cache_requests_total" in metrics.text
    finally:
        names = list((await resources.es.indices.get(index=f"{prefix}-*")).body)
        await resources.es.indices.delete(index=",".join(names))
        for kind in ("documents", "prompts", "conversations", "runs"):
            await resources.es.indices.delete_index_template(name=manager.template_name(kind))


async def test_elasticsearch_down_or_uninitialised_is_a_503_saying_when_to_retry(
    settings, embedder, tenant: TenantKey
):
    from myaiserv.app import create_app
    from myaiserv.evaluation.harness import free_port

    down = settings.model_copy(update={"es_url": [f"http://127.0.0.1:{free_port()}"]})
    missing = settings.model_copy(
        update={"es": settings.es.model_copy(update={"index_prefix": f"missing-{uuid.uuid4()}"})}
    )
    for broken, detail in ((down, "elasticsearch is unavailable"), (missing, "index init")):
        async with AsyncTestClient(app=create_app(broken, embedder=embedder)) as client:
            for body in (
                {"query": "x", "mode": "bm25"},
                {"query": "x"},
                {"filters": {"tags": ["a"]}},
            ):
                resp = await client.post("/v1/search", json=body, headers=tenant.headers)
                assert resp.status_code == 503, resp.text
                assert resp.json()["dependency"] == "elasticsearch" and detail in resp.text
                assert resp.headers["retry-after"] == "5"


async def test_processes_starting_at_once_on_a_fresh_cluster_create_one_index_per_kind(
    settings, resources: Resources
):
    """Indexers scaled out start together and each makes sure the indices exist: exactly
    one index per kind is created and every process ends up using it (no orphan index, no
    alias with two write indices, no process failing)."""
    import asyncio

    from myaiserv.search.indices import IndexManager
    from myaiserv.search.kinds import KINDS

    prefix = f"{settings.es.index_prefix}-race"
    managers = [
        IndexManager(resources.es, prefix, resources.indices.model, resources.indices.options)
        for _ in range(4)
    ]
    try:
        results = await asyncio.gather(*(m.ensure_all() for m in managers))
        assert all(r == results[0] for r in results), results
        found = (await resources.es.indices.get(index=f"{prefix}-*")).body
        assert sorted(found) == sorted(results[0].values())
        for kind in KINDS:
            aliases = (await resources.es.indices.get_alias(name=managers[0].alias(kind))).body
            assert list(aliases) == [results[0][kind]]
            assert aliases[results[0][kind]]["aliases"][managers[0].alias(kind)]["is_write_index"]
    finally:
        names = list((await resources.es.indices.get(index=f"{prefix}-*")).body)
        if names:
            await resources.es.indices.delete(index=",".join(names))
        for kind in KINDS:
            await resources.es.indices.delete_index_template(name=managers[0].template_name(kind))


async def test_an_expired_cursor_is_a_410_naming_the_cursor(
    api: AsyncTestClient, resources: Resources, corpus
):
    body = {"query": "the", "mode": "bm25", "kinds": ["documents"], "size": 1}
    cursor = (await search(api, **body))["next_cursor"]
    # The window behind the cursor goes away (as after its keep-alive).
    prefix = resources.settings.redis.namespace
    keys = [k async for k in resources.redis.scan_iter(match=f"{prefix}:window:*")]
    assert keys
    await resources.redis.delete(*keys)
    resp = await api.post("/v1/search", json={**body, "cursor": cursor})
    assert resp.status_code == 410, resp.text
    assert resp.json()["errors"] == [{"field": "cursor", "message": "expired"}]
    # So does the point in time of a page past the window.
    body = {**body, "window": 1}
    second = await search(api, **body, cursor=(await search(api, **body))["next_cursor"])
    await resources.es.close_point_in_time(id=_position(second["next_cursor"])["p"])
    resp = await api.post("/v1/search", json={**body, "cursor": second["next_cursor"]})
    assert resp.status_code == 410, resp.text


def _position(cursor: str) -> dict[str, Any]:
    """What a (signed) cursor holds; tests read it, clients need not."""
    import base64
    import json

    payload = cursor.partition(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_redis_down_means_no_cache_not_an_error(
    api: AsyncTestClient, resources: Resources, stack, corpus
):
    import asyncio

    body = {"query": "photosynthesis sunlight", "kinds": ["documents"]}
    await asyncio.to_thread(stack.stop, "redis")
    try:
        for _ in range(2):
            resp = await api.post("/v1/search", json=body)
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-cache"] == "bypass"
            assert titles(resp.json())[0] == "Photosynthesis"
    finally:
        await asyncio.to_thread(stack.start, "redis")


async def test_a_document_id_filter_finds_that_documents_chunks_and_the_runs_that_used_it(
    api: AsyncTestClient, resources: Resources
) -> None:
    word = "zq" + uuid.uuid4().hex[:10]
    ids = []
    for n in range(2):
        resp = await api.post("/v1/documents", json={"title": f"d{n}", "text": f"{word} text {n}"})
        ids.append(resp.json()["id"])
    run = await api.post(
        "/v1/runs",
        json={
            "provider": "p",
            "model": "m",
            "input": f"asked about {word}",
            "status": "ok",
            "retrieved_chunk_ids": [f"{ids[0]}:0:x"],
        },
    )
    assert run.status_code == 201, run.text
    await drain(resources)
    body = {"query": word, "mode": "bm25", "filters": {"document_id": [ids[0]]}}
    hits = (await api.post("/v1/search", json=body)).json()["hits"]
    found = {(h["kind"], h["fields"].get("document_id")) for h in hits}
    assert ("documents", ids[0]) in found
    assert ("documents", ids[1]) not in {(k, d) for k, d in found}
    assert any(h["kind"] == "runs" for h in hits)
