"""Documents through the API, into Elasticsearch through the outbox, and back out."""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from myaiserv.db.models import Document, OutboxEvent
from myaiserv.resources import Resources
from tests.support import TenantKey, drain, make_tenant

pytestmark = pytest.mark.integration


async def chunks_of(resources: Resources, tenant: TenantKey, document_id: str) -> list[dict]:
    resp = await resources.es.search(
        index=resources.indices.alias("documents"),
        query={
            "bool": {
                "filter": [
                    {"term": {"tenant_id": str(tenant.id)}},
                    {"term": {"document_id": document_id}},
                ]
            }
        },
        source_excludes=["embedding"],
        size=1000,
        version=True,
    )
    return [
        {"_id": h["_id"], "_version": h["_version"], **h["_source"]} for h in resp["hits"]["hits"]
    ]


async def test_document_round_trip(api: AsyncTestClient, tenant: TenantKey, resources: Resources):
    body = {
        "title": "Deep sea vents",
        "text": "# Vents\n\nHydrothermal vents host chemosynthetic life.\n\n"
        "## Fauna\n\nTube worms grow quickly near black smokers.",
        "content_type": "text/markdown",
        "source": "https://example.org/vents",
        "tags": ["ocean", "biology"],
        "metadata": {"year": 2020},
    }
    created = await api.post("/v1/documents", json=body)
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["version"] == 1 and doc["tags"] == ["ocean", "biology"]

    await drain(resources)
    chunks = await chunks_of(resources, tenant, doc["id"])
    assert chunks, "document not indexed"
    assert {c["version"] for c in chunks} == {1}
    assert all(c["_version"] == 1 for c in chunks)
    assert any("chemosynthetic" in c["text"] for c in chunks)
    assert all(c["title"] == "Deep sea vents" and c["tags"] == ["ocean", "biology"] for c in chunks)
    assert all(c["_id"].startswith(doc["id"] + ":") for c in chunks)

    got = await api.get(f"/v1/documents/{doc['id']}")
    assert got.status_code == 200 and "Tube worms" in got.json()["text"]

    updated = await api.patch(
        f"/v1/documents/{doc['id']}",
        json={"text": "Completely new text about glaciers.", "tags": ["ice"]},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    await drain(resources)
    chunks = await chunks_of(resources, tenant, doc["id"])
    assert len(chunks) == 1, "stale chunks of version 1 survived the update"
    assert chunks[0]["version"] == 2 and chunks[0]["_version"] == 2
    assert "glaciers" in chunks[0]["text"] and chunks[0]["tags"] == ["ice"]

    deleted = await api.delete(f"/v1/documents/{doc['id']}")
    assert deleted.status_code == 204
    assert (await api.get(f"/v1/documents/{doc['id']}")).status_code == 404
    await drain(resources)
    assert await chunks_of(resources, tenant, doc["id"]) == []


async def test_upload_formats(api: AsyncTestClient, tenant: TenantKey, resources: Resources):
    html = (
        b"<html><head><title>Page</title><script>x()</script></head>"
        b"<body><h1>Big</h1><p>Hello there.</p></body></html>"
    )
    resp = await api.post(
        "/v1/documents/upload",
        files={"file": ("page.html", html, "text/html")},
        data={"tags": "web, test", "metadata": '{"lang": "en"}'},
    )
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert doc["title"] == "Page" and doc["content_type"] == "text/html"
    assert doc["tags"] == ["web", "test"] and doc["metadata"] == {"lang": "en"}
    text = (await api.get(f"/v1/documents/{doc['id']}")).json()["text"]
    assert "Hello there." in text and "x()" not in text

    again = await api.post("/v1/documents/upload", files={"file": ("page.html", html, "text/html")})
    assert again.status_code == 200 and again.json()["deduplicated"] is True
    assert again.json()["id"] == doc["id"]

    md = await api.post(
        "/v1/documents/upload", files={"file": ("notes.md", b"# Notes\n\nSome notes.", "")}
    )
    assert md.status_code == 201 and md.json()["content_type"] == "text/markdown"


async def test_batch_is_all_or_nothing(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
):
    good = {"documents": [{"text": f"batch document {i}", "source": f"s{i}"} for i in range(5)]}
    resp = await api.post("/v1/documents/batch", json=good)
    assert resp.status_code == 201, resp.text
    assert resp.json()["created"] == 5

    bad = {"documents": [{"text": "fine"}, {"text": "broken\u0000text"}]}
    resp = await api.post("/v1/documents/batch", json=bad)
    assert resp.status_code == 422
    assert "documents[1].text" in resp.json()["detail"]
    async with resources.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Document).where(Document.tenant_id == tenant.id)
        )
    assert count == 5, "a rejected batch left rows behind"


async def test_listing_pages_every_document_once(api: AsyncTestClient):
    ids = set()
    for i in range(7):
        resp = await api.post("/v1/documents", json={"text": f"paged doc {i}", "source": str(i)})
        ids.add(resp.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/v1/documents", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)


async def test_listing_by_tag_keeps_the_documents_carrying_it(api: AsyncTestClient):
    tagged = set()
    for i, tags in enumerate([["a", "b"], ["b"], ["a"], []]):
        resp = await api.post(
            "/v1/documents", json={"text": f"tagged doc {i}", "source": f"t{i}", "tags": tags}
        )
        if "a" in tags:
            tagged.add(resp.json()["id"])
    listed = (await api.get("/v1/documents", params={"tag": "a"})).json()
    assert {item["id"] for item in listed["items"]} == tagged
    assert (await api.get("/v1/documents", params={"tag": "none"})).json()["items"] == []


async def test_tenants_are_isolated(
    api: AsyncTestClient, client: AsyncTestClient, resources: Resources
):
    doc = (await api.post("/v1/documents", json={"text": "private notes"})).json()
    other = await make_tenant(resources)
    headers = other.headers
    assert (await client.get(f"/v1/documents/{doc['id']}", headers=headers)).status_code == 404
    assert (await client.delete(f"/v1/documents/{doc['id']}", headers=headers)).status_code == 404
    listed = (await client.get("/v1/documents", headers=headers)).json()
    assert listed["items"] == []
    # The same content is a separate document for the other tenant.
    mine = await client.post("/v1/documents", json={"text": "private notes"}, headers=headers)
    assert mine.status_code == 201 and mine.json()["id"] != doc["id"]


async def test_auth_and_scopes(client: AsyncTestClient, resources: Resources):
    assert (await client.get("/v1/documents")).status_code == 401
    bad = await client.get(
        "/v1/documents", headers={"Authorization": "Bearer mas_000000000000_nope"}
    )
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/problem+json")
    reader = await make_tenant(resources, scopes=["read"])
    assert (await client.get("/v1/documents", headers=reader.headers)).status_code == 200
    denied = await client.post("/v1/documents", json={"text": "x"}, headers=reader.headers)
    assert denied.status_code == 403
    via_header = await client.get("/v1/documents", headers={"X-API-Key": reader.key})
    assert via_header.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "needle"),
    [
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, ""),
        ({"json": {}}, 400, "text"),
        ({"json": {"text": 5}}, 400, "text"),
        ({"json": {"text": "x", "colour": "red"}}, 400, "colour"),
        ({"json": {"text": "x", "tags": "not-a-list"}}, 400, "tags"),
        ({"json": {"text": "x", "content_type": "application/pdf"}}, 400, "content_type"),
        ({"json": {"text": "nul\u0000byte"}}, 422, "text"),
        ({"json": {"text": "x", "metadata": {"k": "v\u0000"}}}, 422, "metadata.k"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, ""),
    ],
)
async def test_bad_json_input(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources, kwargs, status, needle
):
    resp = await api.post("/v1/documents", **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert needle in resp.text
    async with resources.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Document).where(Document.tenant_id == tenant.id)
        )
    assert count == 0


@pytest.mark.parametrize(
    ("name", "content", "ctype", "status", "needle"),
    [
        ("x.pdf", b"this is no pdf", "application/pdf", 422, "not a PDF"),
        ("x.pdf", b"%PDF-1.4 garbage garbage", "application/pdf", 422, "PDF"),
        ("x.txt", b"caf\xe9 latin-1", "text/plain", 422, "UTF-8"),
        ("x.docx", b"PK\x03\x04", "application/vnd.openxmlformats-officedocument", 415, "file"),
        ("x.txt", b"   \n  ", "text/plain", 422, "file"),
    ],
)
async def test_bad_uploads(api: AsyncTestClient, name, content, ctype, status, needle):
    resp = await api.post("/v1/documents/upload", files={"file": (name, content, ctype)})
    assert resp.status_code == status, resp.text
    assert needle in resp.json()["detail"]


async def test_limits(api: AsyncTestClient, resources: Resources, tenant: TenantKey):
    limit = resources.settings.limits.max_batch_documents
    too_many = {"documents": [{"text": f"d{i}"} for i in range(limit + 1)]}
    resp = await api.post("/v1/documents/batch", json=too_many)
    assert resp.status_code == 422
    assert "documents" in resp.json()["detail"] and str(limit) in resp.json()["detail"]

    ten_k = {"documents": [{"text": f"d{i}"} for i in range(10_000)]}
    resp = await api.post("/v1/documents/batch", json=ten_k)
    assert resp.status_code in (413, 422)

    big = b"a" * (resources.settings.limits.max_upload_bytes + 1)
    resp = await api.post("/v1/documents/upload", files={"file": ("big.txt", big, "text/plain")})
    assert resp.status_code == 413
    async with resources.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Document).where(Document.tenant_id == tenant.id)
        )
    assert count == 0


async def test_unknown_document_is_404(api: AsyncTestClient):
    resp = await api.get(f"/v1/documents/{uuid.uuid4()}")
    assert resp.status_code == 404
    assert (await api.get("/v1/documents/not-a-uuid")).status_code in (400, 404)
    assert (await api.get("/v1/documents", params={"cursor": "garbage!"})).status_code == 422


async def test_outbox_row_written_with_each_change(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
):
    doc = (await api.post("/v1/documents", json={"text": "outbox check"})).json()
    await api.patch(f"/v1/documents/{doc['id']}", json={"title": "renamed"})
    await api.delete(f"/v1/documents/{doc['id']}")
    async with resources.sessionmaker() as session:
        rows = (
            await session.execute(
                select(OutboxEvent.op, OutboxEvent.version)
                .where(OutboxEvent.entity_id == uuid.UUID(doc["id"]))
                .order_by(OutboxEvent.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [("upsert", 1), ("upsert", 2), ("delete", 3)]
