"""Runs through the API, into Elasticsearch through the outbox, and back out; references
checked per tenant; bad input refused with the field named."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.db.models import Prompt, PromptVersion
from myaiserv.kit.validation import InvalidInputError
from myaiserv.resources import Resources
from myaiserv.runs.service import RunService
from tests.support import TenantKey, drain, make_tenant

pytestmark = pytest.mark.integration

BASE = {"provider": "openai", "model": "gpt-4o-mini", "input": "What is RAG?", "status": "ok"}


async def indexed(resources: Resources, tenant: TenantKey, run_id: str) -> dict | None:
    resp = await resources.es.search(
        index=resources.indices.alias("runs"),
        query={
            "bool": {
                "filter": [
                    {"term": {"tenant_id": str(tenant.id)}},
                    {"ids": {"values": [run_id]}},
                ]
            }
        },
        source_excludes=["embedding"],
        version=True,
    )
    hits = resp["hits"]["hits"]
    return {"_version": hits[0]["_version"], **hits[0]["_source"]} if hits else None


async def add_prompt_version(resources: Resources, tenant: TenantKey) -> uuid.UUID:
    async with resources.sessionmaker() as session, session.begin():
        prompt = Prompt(tenant_id=tenant.id, name=f"qa-{uuid.uuid4().hex[:6]}", latest_version=3)
        session.add(prompt)
        await session.flush()
        version = PromptVersion(
            prompt_id=prompt.id, tenant_id=tenant.id, number=3, template="Answer: {q}"
        )
        session.add(version)
        await session.flush()
        return version.id


async def test_run_round_trip(api: AsyncTestClient, tenant: TenantKey, resources: Resources):
    conv = (await api.post("/v1/conversations", json={"title": "support"})).json()["id"]
    doc_id = str(uuid.uuid4())
    created = await api.post(
        "/v1/runs",
        json={
            **BASE,
            "output": "Retrieval-augmented generation.",
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "latency_ms": 812.5,
            "time_to_first_token_ms": 95,
            "cost_usd": 0.00042,
            "conversation_id": conv,
            "retrieved_chunk_ids": [f"{doc_id}:0:abc", f"{doc_id}:1:def"],
            "cited_chunk_ids": [f"{doc_id}:0:abc"],
            "metadata": {"user": "u1"},
            "started_at": "2025-01-01T10:00:00Z",
            "finished_at": "2025-01-01T10:00:01.5+00:00",
        },
    )
    assert created.status_code == 201, created.text
    run = created.json()
    rid = run["id"]
    assert run["total_tokens"] == 150, "total is the sum of both parts when omitted"
    assert run["cost_usd"] == pytest.approx(0.00042) and run["latency_ms"] == 812.5
    assert run["conversation_id"] == conv and run["version"] == 1

    got = await api.get(f"/v1/runs/{rid}")
    assert got.status_code == 200 and got.json() == run

    await drain(resources)
    doc = await indexed(resources, tenant, rid)
    assert doc is not None, "run not indexed"
    assert doc["version"] == 1 and doc["_version"] == 1 and doc["status"] == "ok"
    assert doc["document_ids"] == [doc_id] and doc["conversation_id"] == conv

    updated = await api.patch(
        f"/v1/runs/{rid}",
        json={"status": "error", "error": "rate limited", "completion_tokens": 0},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2 and updated.json()["total_tokens"] == 120
    assert updated.json()["output"] == "Retrieval-augmented generation."
    await drain(resources)
    doc = await indexed(resources, tenant, rid)
    assert doc["version"] == 2 and doc["_version"] == 2
    assert doc["status"] == "error" and doc["error"] == "rate limited"

    # Deleting the conversation keeps the run, unlinked, and the index follows.
    assert (await api.delete(f"/v1/conversations/{conv}")).status_code == 204
    unlinked = (await api.get(f"/v1/runs/{rid}")).json()
    assert unlinked["conversation_id"] is None and unlinked["version"] == 3
    await drain(resources)
    doc = await indexed(resources, tenant, rid)
    assert doc["conversation_id"] is None and doc["version"] == 3

    assert (await api.delete(f"/v1/runs/{rid}")).status_code == 204
    assert (await api.get(f"/v1/runs/{rid}")).status_code == 404
    assert (await api.delete(f"/v1/runs/{rid}")).status_code == 404
    await drain(resources)
    assert await indexed(resources, tenant, rid) is None


async def test_list_filters_and_pages(api: AsyncTestClient):
    made = []
    for i, (provider, status) in enumerate(
        [("openai", "ok"), ("anthropic", "ok"), ("openai", "error"), ("openai", "ok")]
    ):
        resp = await api.post(
            "/v1/runs", json={**BASE, "provider": provider, "status": status, "input": f"q{i}"}
        )
        assert resp.status_code == 201, resp.text
        made.append(resp.json()["id"])

    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/runs", params=params)).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]

    openai_ok = (await api.get("/v1/runs", params={"provider": "openai", "status": "ok"})).json()
    assert [r["id"] for r in openai_ok["items"]] == [made[3], made[0]]
    by_model = await api.get("/v1/runs", params={"model": "gpt-4o-mini", "status": "error"})
    assert [r["id"] for r in by_model.json()["items"]] == [made[2]]
    assert (await api.get("/v1/runs", params={"status": "done"})).status_code == 422
    assert (await api.get("/v1/runs", params={"provider": "a\u0000"})).status_code == 422
    assert (await api.get("/v1/runs", params={"cursor": "garbage"})).status_code == 422


async def test_references_are_per_tenant(
    api: AsyncTestClient, client: AsyncTestClient, tenant: TenantKey, resources: Resources
):
    version_id = await add_prompt_version(resources, tenant)
    resp = await api.post("/v1/runs", json={**BASE, "prompt_version_id": str(version_id)})
    assert resp.status_code == 201, resp.text
    run = resp.json()
    assert run["prompt_version_id"] == str(version_id) and run["prompt_version"] == 3
    assert run["prompt_name"].startswith("qa-")
    named = await api.post(
        "/v1/runs",
        json={**BASE, "prompt_version_id": str(version_id), "prompt_name": "mine"},
    )
    assert named.json()["prompt_name"] == "mine" and named.json()["prompt_version"] == 3

    other = await make_tenant(resources)
    h = other.headers
    foreign_conv = (await client.post("/v1/conversations", json={}, headers=h)).json()["id"]
    foreign_version = await add_prompt_version(resources, other)
    for field, value in [
        ("conversation_id", foreign_conv),
        ("conversation_id", str(uuid.uuid4())),
        ("prompt_version_id", str(foreign_version)),
        ("prompt_version_id", str(uuid.uuid4())),
    ]:
        resp = await api.post("/v1/runs", json={**BASE, field: value})
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == field

    rid = run["id"]
    assert (await client.get(f"/v1/runs/{rid}", headers=h)).status_code == 404
    patched = await client.patch(f"/v1/runs/{rid}", json={"status": "ok"}, headers=h)
    assert patched.status_code == 404
    assert (await client.delete(f"/v1/runs/{rid}", headers=h)).status_code == 404
    assert (await client.get("/v1/runs", headers=h)).json()["items"] == []
    assert (await api.get(f"/v1/runs/{rid}")).status_code == 200

    reader = await make_tenant(resources, scopes=["read"])
    assert (await client.post("/v1/runs", json=BASE, headers=reader.headers)).status_code == 403
    assert (await client.get("/v1/runs", headers=reader.headers)).status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"provider": 1}, 400, "provider"),
        ({"provider": ""}, 422, "provider"),
        ({"provider": "p" * 101}, 422, "provider"),
        ({"model": "m" * 201}, 422, "model"),
        ({"status": "done"}, 400, "status"),
        ({"usage": 1}, 400, "usage"),
        ({"prompt_tokens": -1}, 422, "prompt_tokens"),
        ({"completion_tokens": -3}, 422, "completion_tokens"),
        ({"total_tokens": 2**31}, 422, "total_tokens"),
        ({"prompt_tokens": 2**31 - 1, "completion_tokens": 1}, 422, "total_tokens"),
        ({"prompt_tokens": "ten"}, 400, "prompt_tokens"),
        ({"prompt_version": -1}, 422, "prompt_version"),
        ({"latency_ms": -0.5}, 422, "latency_ms"),
        ({"time_to_first_token_ms": 1e12}, 422, "time_to_first_token_ms"),
        ({"cost_usd": -0.01}, 422, "cost_usd"),
        ({"cost_usd": 1e300}, 422, "cost_usd"),
        ({"cost_usd": "free"}, 400, "cost_usd"),
        ({"conversation_id": "not-a-uuid"}, 400, "conversation_id"),
        ({"input": "a\u0000b"}, 422, "input"),
        ({"output": "a\u0000b"}, 422, "output"),
        ({"metadata": {"k": ["\u0000"]}}, 422, "metadata.k[0]"),
        ({"retrieved_chunk_ids": ["ok", ""]}, 422, "retrieved_chunk_ids[1]"),
        ({"cited_chunk_ids": "abc"}, 400, "cited_chunk_ids"),
        ({"started_at": "yesterday"}, 400, "started_at"),
        ({"started_at": "2025-01-01T10:00:00"}, 422, "started_at"),
        (
            {"started_at": "2025-01-01T10:00:00Z", "finished_at": "2025-01-01T09:59:59Z"},
            422,
            "finished_at",
        ),
    ],
)
async def test_create_rejects_bad_input(
    api: AsyncTestClient, change: dict, status: int, field: str
):
    resp = await api.post("/v1/runs", json={**BASE, **change})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert field in resp.json()["detail"]


async def test_more_bad_input(api: AsyncTestClient, tenant: TenantKey, resources: Resources):
    for body in ({}, {"provider": "openai"}, [BASE], "text"):
        resp = await api.post("/v1/runs", json=body)
        assert resp.status_code == 400, (body, resp.text)
    empty = await api.post("/v1/runs", content=b"", headers={"content-type": "application/json"})
    assert 400 <= empty.status_code < 500

    rid = (
        await api.post("/v1/runs", json={**BASE, "started_at": "2025-01-01T10:00:00+02:00"})
    ).json()["id"]
    assert (await api.patch(f"/v1/runs/{rid}", json={})).status_code == 422
    assert (await api.patch(f"/v1/runs/{rid}", json={"model": "x"})).status_code == 400
    assert (await api.patch(f"/v1/runs/{rid}", json={"status": None})).status_code == 400
    early = await api.patch(f"/v1/runs/{rid}", json={"finished_at": "2025-01-01T07:59:00Z"})
    assert early.status_code == 422 and "finished_at" in early.json()["detail"]
    late = await api.patch(f"/v1/runs/{rid}", json={"finished_at": "2025-01-01T08:00:01Z"})
    assert late.status_code == 200 and late.json()["version"] == 2
    negative = await api.patch(f"/v1/runs/{rid}", json={"cost_usd": -1})
    assert negative.status_code == 422 and "cost_usd" in negative.json()["detail"]
    assert (await api.get(f"/v1/runs/{rid}")).json()["version"] == 2

    for path in ("/v1/runs/not-a-uuid", "/v1/runs/123"):
        for resp in (await api.get(path), await api.delete(path)):
            assert 400 <= resp.status_code < 500, (path, resp.status_code)
    assert (await api.get(f"/v1/runs/{uuid.uuid4()}")).status_code == 404

    # The service the RAG code calls applies the same rules.
    async with resources.sessionmaker() as session, session.begin():
        service = RunService(session, tenant.id)
        run = await service.record(
            provider="local",
            model="m",
            input="q",
            status="ok",
            prompt_tokens=1,
            completion_tokens=2,
            cost_usd=Decimal("0.123456789"),
        )
        assert run.total_tokens == 3 and run.cost_usd == Decimal("0.12345679")
        with pytest.raises(InvalidInputError) as exc:
            await service.record(provider="local", model="m", input="q", status="maybe")
        assert exc.value.field == "status"


async def test_metadata_values_fit_in_one_index_term(api) -> None:
    body = {"provider": "p", "model": "m", "input": "hi", "status": "ok"}
    resp = await api.post("/v1/runs", json={**body, "metadata": {"note": "z" * 9000}})
    assert resp.status_code == 422
    assert "metadata.note" in resp.json()["detail"]
