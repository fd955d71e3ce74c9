"""An acknowledged write is searchable or visibly failed, against the real stack: each
record's ``index_status`` (pending, indexed, failed with the reason) on GET and in lists,
settled by version; a record our own code cannot build is retried with backoff and then
dead-lettered without holding up its batch; dead letters listed per tenant (admin) and
requeued after a fix; cached search pages never outlive a settled write, even when the
indexer cannot reach Redis."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import func, select, text

from indexers.worker import Worker
from myaiserv.db.index_state import settle
from myaiserv.db.models import DeadLetter, OutboxEvent
from myaiserv.deadletters.repository import DeadLetterQuery, requeue
from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.resources import Resources
from myaiserv.search.deps import search_service
from myaiserv.search.schemas import SearchRequest
from tests.support import TenantKey, drain, eventually, make_tenant

pytestmark = pytest.mark.integration

RUN = {"provider": "openai", "model": "gpt-4o-mini", "input": "What is RAG?", "status": "ok"}


def quick_retries(resources: Resources, attempts: int = 3) -> Resources:
    """The resources with build failures retried ``attempts`` times, fast."""
    indexing = resources.settings.indexing.model_copy(
        update={"build_max_attempts": attempts, "retry_backoff_s": 0.05, "retry_backoff_max_s": 0.2}
    )
    settings = resources.settings.model_copy(update={"indexing": indexing})
    return dataclasses.replace(resources, settings=settings)


async def create_each(api: AsyncTestClient) -> dict[str, dict[str, Any]]:
    """One record of each kind, as the API answered its creation."""
    bodies = {
        "documents": {"text": f"status {uuid.uuid4().hex}", "title": "t"},
        "prompts": {"name": f"status-{uuid.uuid4().hex[:8]}", "template": "Hello {{name}}"},
        "conversations": {"title": "status"},
        "runs": RUN,
    }
    created = {}
    for kind, body in bodies.items():
        resp = await api.post(f"/v1/{kind}", json=body)
        assert resp.status_code == 201, resp.text
        created[kind] = resp.json()
    return created


async def listed(api: AsyncTestClient, kind: str, status: str) -> set[str]:
    resp = await api.get(f"/v1/{kind}", params={"index_status": status, "limit": 200})
    assert resp.status_code == 200, resp.text
    return {item["id"] for item in resp.json()["items"]}


async def break_prompt(resources: Resources, prompt_id: str) -> None:
    """Store labels the API never writes but a hand-made fix might (pairs instead of an
    object): the API still reads them, the indexer's builder cannot."""
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE prompts SET labels = '[[\"production\", 1]]' WHERE id = :id"),
            {"id": uuid.UUID(prompt_id)},
        )


async def dead_letters_of(resources: Resources, entity_id: str) -> list[DeadLetter]:
    async with resources.sessionmaker() as session:
        return list(
            await session.scalars(
                select(DeadLetter).where(DeadLetter.entity_id == uuid.UUID(entity_id))
            )
        )


async def test_every_record_is_pending_until_indexed_and_again_after_a_change(
    api: AsyncTestClient, resources: Resources
) -> None:
    created = await create_each(api)
    for kind, body in created.items():
        assert (body["index_status"], body["index_error"], body["index_failed_at"]) == (
            "pending",
            None,
            None,
        ), kind
        assert body["id"] in await listed(api, kind, "pending")
        assert body["id"] not in await listed(api, kind, "indexed")

    await drain(resources)
    for kind, body in created.items():
        got = (await api.get(f"/v1/{kind}/{body['id']}")).json()
        assert got["index_status"] == "indexed", kind
        assert body["id"] in await listed(api, kind, "indexed")
        assert body["id"] not in await listed(api, kind, "pending")

    doc = created["documents"]["id"]
    changed = await api.patch(f"/v1/documents/{doc}", json={"title": "changed"})
    assert changed.json()["index_status"] == "pending"
    run = created["runs"]["id"]
    assert (await api.patch(f"/v1/runs/{run}", json={"output": "x"})).json()[
        "index_status"
    ] == "pending"
    await drain(resources)
    assert (await api.get(f"/v1/documents/{doc}")).json()["index_status"] == "indexed"
    assert (await api.get(f"/v1/runs/{run}")).json()["index_status"] == "indexed"


async def test_a_bad_index_status_filter_is_a_400_naming_it(api: AsyncTestClient) -> None:
    for kind in ("documents", "prompts", "conversations", "runs"):
        resp = await api.get(f"/v1/{kind}", params={"index_status": "done"})
        assert resp.status_code == 400, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in resp.json()["errors"]] == ["index_status"]


async def test_settling_a_run_keeps_its_own_error(
    api: AsyncTestClient, resources: Resources
) -> None:
    """Settling sets only the index state: a run's ``error`` column (named like the
    failure reason settling records) survives being indexed."""
    body = {**RUN, "status": "error", "error": "upstream said 500"}
    run = (await api.post("/v1/runs", json=body)).json()
    await drain(resources)
    got = (await api.get(f"/v1/runs/{run['id']}")).json()
    assert got["index_status"] == "indexed"
    assert got["error"] == "upstream said 500"


async def test_a_stale_settlement_never_marks_a_newer_version(
    api: AsyncTestClient, resources: Resources
) -> None:
    doc = (await api.post("/v1/documents", json={"text": "stale settlement"})).json()
    await drain(resources)
    await api.patch(f"/v1/documents/{doc['id']}", json={"title": "v2"})  # version 2, pending

    # A batch that wrote version 1 settles late: version 2 stays pending, and failed too.
    async with resources.sessionmaker() as session, session.begin():
        await settle(session, "documents", "indexed", {uuid.UUID(doc["id"]): 1})
        await settle(
            session, "documents", "failed", {uuid.UUID(doc["id"]): 1}, {uuid.UUID(doc["id"]): "x"}
        )
    got = (await api.get(f"/v1/documents/{doc['id']}")).json()
    assert (got["version"], got["index_status"]) == (2, "pending")

    await drain(resources)
    assert (await api.get(f"/v1/documents/{doc['id']}")).json()["index_status"] == "indexed"


async def test_a_record_our_code_cannot_build_is_retried_then_failed_and_requeued(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    fast = quick_retries(resources, attempts=3)
    broken = (await api.post("/v1/prompts", json={"name": "broken", "template": "x"})).json()
    await drain(resources)
    await break_prompt(resources, broken["id"])
    await api.patch(f"/v1/prompts/{broken['id']}", json={"description": "re-index me"})
    fine = (await api.post("/v1/prompts", json={"name": "fine", "template": "y"})).json()

    # The batch holds both: the good prompt goes out at the first try.
    worker = Worker(fast, name="build-failure")
    await worker.drain(idle_exit=True)
    assert (await api.get(f"/v1/prompts/{fine['id']}")).json()["index_status"] == "indexed"

    async def dead() -> bool:
        await worker.drain(idle_exit=True)
        return bool(await dead_letters_of(resources, broken["id"]))

    assert await eventually(dead, within=30, interval=0.1)
    [letter] = await dead_letters_of(resources, broken["id"])
    assert (letter.reason, letter.attempts) == ("build_error", 3)
    assert letter.error.startswith("AttributeError: ")
    async with resources.sessionmaker() as session:
        left = await session.scalar(
            select(func.count(OutboxEvent.id)).where(
                OutboxEvent.entity_id == uuid.UUID(broken["id"])
            )
        )
    assert left == 0, "a build failure must not pin its outbox rows"

    got = (await api.get(f"/v1/prompts/{broken['id']}")).json()
    assert got["index_status"] == "failed"
    assert got["index_error"].startswith("build_error: AttributeError: ")
    assert got["index_failed_at"] is not None
    assert broken["id"] in await listed(api, "prompts", "failed")
    assert fine["id"] not in await listed(api, "prompts", "failed")

    # Listed for the tenant's admins, with the reason.
    page = (await api.get("/v1/admin/dead-letters", params={"kind": "prompts"})).json()
    assert [(i["entity_id"], i["reason"]) for i in page["items"]] == [(broken["id"], "build_error")]

    # Fixed, then requeued: pending, then indexed.
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE prompts SET labels = '{}' WHERE id = :id"), {"id": uuid.UUID(broken["id"])}
        )
        requeued = await requeue(session, DeadLetterQuery(entity_id=uuid.UUID(broken["id"])))
    assert [r.entity_id for r in requeued] == [uuid.UUID(broken["id"])]
    assert (await api.get(f"/v1/prompts/{broken['id']}")).json()["index_status"] == "pending"
    await worker.drain(idle_exit=True)
    got = (await api.get(f"/v1/prompts/{broken['id']}")).json()
    assert (got["index_status"], got["index_error"]) == ("indexed", None)
    assert await dead_letters_of(resources, broken["id"]) == []


async def test_dead_letters_are_an_admins_and_only_their_tenants(
    client: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    client.headers.update(tenant.headers)
    prompt = (await client.post("/v1/prompts", json={"name": "dl", "template": "x"})).json()
    await drain(resources)
    await break_prompt(resources, prompt["id"])
    await client.patch(f"/v1/prompts/{prompt['id']}", json={"description": "again"})
    await Worker(quick_retries(resources, attempts=1), name="dl").drain(idle_exit=True)
    mine = (await client.get("/v1/admin/dead-letters")).json()["items"]
    assert [i["entity_id"] for i in mine] == [prompt["id"]]

    other = await make_tenant(resources)
    theirs = await client.get("/v1/admin/dead-letters", headers=other.headers)
    assert theirs.status_code == 200 and theirs.json()["items"] == []
    reader = await make_tenant(resources, scopes=["read", "write"])
    assert (await client.get("/v1/admin/dead-letters", headers=reader.headers)).status_code == 403
    bad = await client.get("/v1/admin/dead-letters", params={"kind": "chunks"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "kind"


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_cached_page_is_not_served_after_a_write_the_indexer_could_not_announce_in_redis(
    api: AsyncTestClient, resources: Resources
) -> None:
    word = f"zq{uuid.uuid4().hex[:10]}"
    await api.post("/v1/documents", json={"text": f"{word} first", "title": "one"})
    await drain(resources)
    body = {"query": word, "mode": "bm25", "kinds": ["documents"]}
    assert (await api.post("/v1/search", json=body)).headers["x-cache"] == "miss"
    hit = await api.post("/v1/search", json=body)
    assert hit.headers["x-cache"] == "hit" and len(hit.json()["hits"]) == 1

    # The indexer's Redis refuses connections (the web side's is fine): the write is
    # settled all the same, and the cached page with one hit is never served again.
    dead = Redis(host="127.0.0.1", port=refused_port(), socket_connect_timeout=1)
    try:
        cut_off = dataclasses.replace(
            resources, redis=dead, embedder=CachedEmbedder(resources.embedder.embedder, dead)
        )
        await api.post("/v1/documents", json={"text": f"{word} second", "title": "two"})
        assert await Worker(cut_off, name="no-redis").drain(idle_exit=True) >= 1
    finally:
        await dead.aclose()
    after = await api.post("/v1/search", json=body)
    assert after.headers["x-cache"] == "miss"
    assert len(after.json()["hits"]) == 2


async def test_a_web_side_redis_that_refuses_connections_means_no_cache(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    """The shared Redis stays up: this service alone is pointed at a port nothing
    listens on. Generations are still read (PostgreSQL); the page is computed, uncached."""
    word = f"zq{uuid.uuid4().hex[:10]}"
    await api.post("/v1/documents", json={"text": f"{word} only", "title": "one"})
    await drain(resources)
    dead = Redis(host="127.0.0.1", port=refused_port(), socket_connect_timeout=1)
    try:
        cut_off = dataclasses.replace(resources, redis=dead)
        service = search_service(cut_off, tenant.id)
        request = SearchRequest(query=word, mode="bm25", kinds=["documents"])
        for _ in range(2):
            body, outcome = await service.search(request)
            assert outcome == "bypass"
            assert len(msgspec.json.decode(body)["hits"]) == 1
    finally:
        await dead.aclose()
