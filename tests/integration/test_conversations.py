"""Conversations and messages through the API, into Elasticsearch through the outbox, and
back out; the history the RAG code reads; tenants kept apart; bad input refused."""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from myaiserv.conversations.service import ConversationService, NewMessage
from myaiserv.db.models import OutboxEvent
from myaiserv.resources import Resources
from tests.support import TenantKey, drain, make_tenant

pytestmark = pytest.mark.integration


async def indexed(resources: Resources, tenant: TenantKey, conversation_id: str) -> dict[str, dict]:
    """The conversation's entries in the index (its own and its messages'), by ``_id``."""
    resp = await resources.es.search(
        index=resources.indices.alias("conversations"),
        query={
            "bool": {
                "filter": [
                    {"term": {"tenant_id": str(tenant.id)}},
                    {"term": {"conversation_id": conversation_id}},
                ]
            }
        },
        source_excludes=["embedding"],
        size=1000,
        version=True,
    )
    return {h["_id"]: {"_version": h["_version"], **h["_source"]} for h in resp["hits"]["hits"]}


async def test_conversation_round_trip(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
):
    created = await api.post(
        "/v1/conversations",
        json={
            "title": "Trip to Lisbon",
            "metadata": {"channel": "web"},
            "messages": [
                {"role": "system", "content": "You plan trips."},
                {"role": "user", "content": "Where should I eat in Alfama?", "token_count": 9},
            ],
        },
    )
    assert created.status_code == 201, created.text
    conv = created.json()
    cid = conv["id"]
    assert conv["version"] == 1 and conv["message_count"] == 2
    assert [m["role"] for m in conv["messages"]] == ["system", "user"]
    first_ids = [m["id"] for m in conv["messages"]]

    reply = await api.post(
        f"/v1/conversations/{cid}/messages",
        json={
            "role": "assistant",
            "content": "Try the grilled sardines near the cathedral.",
            "prompt_tokens": 40,
            "completion_tokens": 12,
        },
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["conversation_id"] == cid and reply.json()["version"] == 1
    msg_ids = [*first_ids, reply.json()["id"]]

    got = await api.get(f"/v1/conversations/{cid}")
    assert got.status_code == 200 and got.json()["message_count"] == 3
    assert got.json()["metadata"] == {"channel": "web"}

    await drain(resources)
    docs = await indexed(resources, tenant, cid)
    assert set(docs) == {f"conversation:{cid}", *(f"message:{m}" for m in msg_ids)}
    assert docs[f"conversation:{cid}"]["doc_type"] == "conversation"
    assert docs[f"conversation:{cid}"]["title"] == "Trip to Lisbon"
    sardines = docs[f"message:{msg_ids[2]}"]
    assert sardines["doc_type"] == "message" and sardines["role"] == "assistant"
    assert "sardines" in sardines["content"] and sardines["_version"] == 1

    updated = await api.patch(f"/v1/conversations/{cid}", json={"title": "Lisbon, spring"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2 and updated.json()["metadata"] == {"channel": "web"}
    await drain(resources)
    doc = (await indexed(resources, tenant, cid))[f"conversation:{cid}"]
    assert doc["version"] == 2 and doc["_version"] == 2 and doc["title"] == "Lisbon, spring"

    cleared = await api.patch(f"/v1/conversations/{cid}", json={"title": None, "metadata": {}})
    assert cleared.status_code == 200 and cleared.json()["title"] is None
    assert cleared.json()["version"] == 3

    assert (await api.delete(f"/v1/conversations/{cid}")).status_code == 204
    assert (await api.get(f"/v1/conversations/{cid}")).status_code == 404
    assert (await api.get(f"/v1/conversations/{cid}/messages")).status_code == 404
    assert (await api.delete(f"/v1/conversations/{cid}")).status_code == 404
    async with resources.sessionmaker() as session:
        events = (
            await session.execute(
                select(OutboxEvent.kind, OutboxEvent.op, OutboxEvent.version).where(
                    OutboxEvent.entity_id.in_([uuid.UUID(cid), *map(uuid.UUID, msg_ids)])
                )
            )
        ).all()
    assert ("conversations", "delete", 4) in events
    assert sum(1 for e in events if e == ("messages", "delete", 2)) == 3
    await drain(resources)
    assert await indexed(resources, tenant, cid) == {}


async def test_messages_order_pages_and_delete(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
):
    cid = (
        await api.post(
            "/v1/conversations",
            json={"messages": [{"role": "user", "content": f"m{i}"} for i in range(3)]},
        )
    ).json()["id"]
    for i in range(3, 7):
        resp = await api.post(
            f"/v1/conversations/{cid}/messages", json={"role": "user", "content": f"m{i}"}
        )
        assert resp.status_code == 201

    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await api.get(f"/v1/conversations/{cid}/messages", params=params)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [m["content"] for m in seen] == [f"m{i}" for i in range(7)], "not oldest first"

    bad_cursor = await api.get(f"/v1/conversations/{cid}/messages", params={"cursor": "nope"})
    assert bad_cursor.status_code == 422

    # The RAG memory: newest first, and messages added in one transaction keep their order.
    async with resources.sessionmaker() as session, session.begin():
        service = ConversationService(session, tenant.id)
        await service.add_message(uuid.UUID(cid), NewMessage(role="user", content="q"))
        await service.add_message(uuid.UUID(cid), NewMessage(role="assistant", content="a"))
        history = await service.history(uuid.UUID(cid), limit=3)
    assert [m.content for m in history] == ["a", "q", "m6"]

    target = seen[2]["id"]
    assert (await api.delete(f"/v1/conversations/{cid}/messages/{target}")).status_code == 204
    again = await api.delete(f"/v1/conversations/{cid}/messages/{target}")
    assert again.status_code == 404
    got = (await api.get(f"/v1/conversations/{cid}")).json()
    assert got["message_count"] == 8
    await drain(resources)
    docs = await indexed(resources, tenant, cid)
    assert f"message:{target}" not in docs and f"message:{seen[3]['id']}" in docs

    other = (await api.post("/v1/conversations", json={})).json()["id"]
    wrong_parent = await api.delete(f"/v1/conversations/{other}/messages/{seen[3]['id']}")
    assert wrong_parent.status_code == 404


async def test_list_conversations_newest_first(api: AsyncTestClient):
    ids = [
        (await api.post("/v1/conversations", json={"title": f"c{i}"})).json()["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/conversations", params=params)).json()
        seen += [c["id"] for c in page["items"]]
        assert all(c["message_count"] == 0 for c in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


async def test_tenants_are_isolated(
    api: AsyncTestClient, client: AsyncTestClient, resources: Resources
):
    cid = (
        await api.post(
            "/v1/conversations",
            json={"title": "private", "messages": [{"role": "user", "content": "secret"}]},
        )
    ).json()["id"]
    mid = (await api.get(f"/v1/conversations/{cid}/messages")).json()["items"][0]["id"]
    other = await make_tenant(resources)
    h = other.headers
    assert (await client.get(f"/v1/conversations/{cid}", headers=h)).status_code == 404
    assert (await client.get(f"/v1/conversations/{cid}/messages", headers=h)).status_code == 404
    patched = await client.patch(f"/v1/conversations/{cid}", json={"title": "x"}, headers=h)
    assert patched.status_code == 404
    posted = await client.post(
        f"/v1/conversations/{cid}/messages", json={"role": "user", "content": "hi"}, headers=h
    )
    assert posted.status_code == 404
    gone = await client.delete(f"/v1/conversations/{cid}/messages/{mid}", headers=h)
    assert gone.status_code == 404
    assert (await client.delete(f"/v1/conversations/{cid}", headers=h)).status_code == 404
    listed = (await client.get("/v1/conversations", headers=h)).json()
    assert listed["items"] == []
    assert (await api.get(f"/v1/conversations/{cid}")).json()["message_count"] == 1

    reader = await make_tenant(resources, scopes=["read"])
    denied = await client.post("/v1/conversations", json={}, headers=reader.headers)
    assert denied.status_code == 403
    assert (await client.get("/v1/conversations", headers=reader.headers)).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"title": 5}, 400, "title"),
        ({"title": ""}, 422, "title"),
        ({"title": "x" * 1001}, 422, "title"),
        ({"metadata": []}, 400, "metadata"),
        ({"owner": "me"}, 400, "owner"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
        ({"messages": [{"role": "user"}]}, 400, "content"),
        ({"messages": [{"role": "user", "content": ""}]}, 422, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "a\u0000b"}]}, 422, "messages[0].content"),
        ({"title": "a\u0000b"}, 422, "title"),
        ({"metadata": {"k": "a\u0000b"}}, 422, "metadata.k"),
        ({"messages": [{"role": "user", "content": "x", "token_count": -1}]}, 422, "token_count"),
    ],
)
async def test_create_rejects_bad_input(api: AsyncTestClient, body: dict, status: int, field: str):
    resp = await api.post("/v1/conversations", json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert field in resp.json()["detail"]


async def test_message_and_path_validation(api: AsyncTestClient):
    cid = (await api.post("/v1/conversations", json={})).json()["id"]
    url = f"/v1/conversations/{cid}/messages"
    cases = [
        ({}, 400),
        ({"role": "user", "content": "x", "extra": 1}, 400),
        ({"role": "robot", "content": "x"}, 400),
        ({"role": "user", "content": 3}, 400),
        ({"role": "user", "content": ""}, 422),
        ({"role": "user", "content": "x" * 1_000_001}, 422),
        ({"role": "user", "content": "x", "prompt_tokens": -5}, 422),
        ({"role": "user", "content": "x", "completion_tokens": 2**31}, 422),
        ({"role": "user", "content": "x", "token_count": 1.5}, 400),
        ({"role": "user", "content": "nul\u0000"}, 422),
    ]
    for body, status in cases:
        resp = await api.post(url, json=body)
        assert resp.status_code == status, (body if len(str(body)) < 200 else "long", resp.text)
    assert (await api.get(url)).json()["items"] == []

    empty = await api.post(url, content=b"", headers={"content-type": "application/json"})
    assert 400 <= empty.status_code < 500
    not_json = await api.post(url, content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert (await api.patch(f"/v1/conversations/{cid}", json={})).status_code == 422
    assert (await api.patch(f"/v1/conversations/{cid}", json={"messages": []})).status_code == 400

    for path in (
        "/v1/conversations/not-a-uuid",
        "/v1/conversations/not-a-uuid/messages",
        f"/v1/conversations/{cid}/messages/not-a-uuid",
    ):
        resp = await api.delete(path)
        assert 400 <= resp.status_code < 500, (path, resp.status_code)
    missing = uuid.uuid4()
    assert (await api.get(f"/v1/conversations/{missing}")).status_code == 404
    posted = await api.post(
        f"/v1/conversations/{missing}/messages", json={"role": "user", "content": "x"}
    )
    assert posted.status_code == 404
    limit = await api.get(f"/v1/conversations/{cid}/messages", params={"limit": 0})
    assert limit.status_code == 400


async def test_metadata_values_fit_in_one_index_term(api) -> None:
    resp = await api.post("/v1/conversations", json={"metadata": {"note": "z" * 9000}})
    assert resp.status_code == 422
    assert "metadata.note" in resp.json()["detail"]
