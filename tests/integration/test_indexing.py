"""The pipeline under stress: whole collections, killed workers, concurrent workers, an
Elasticsearch outage, stale writes, and a reindex while searches run."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexers.bulk import OK, RETRY, Action, write
from indexers.chunk import chunk_text
from indexers.ingest import documents_from_collection, ingest
from indexers.reindex import reindex
from indexers.worker import Worker
from myaiserv.config import Settings
from myaiserv.db.models import DeadLetter, Document, OutboxEvent
from myaiserv.documents.service import DocumentService, NewDocument
from myaiserv.embeddings.model import ModelInfo
from myaiserv.resources import Resources
from myaiserv.search.indices import SPECS, IndexManager, IndexModelMismatchError, write_alias
from myaiserv.stack.manager import Stack
from tests.support import (
    TenantKey,
    drain,
    eventually,
    indexer_process,
    make_tenant,
    outbox_rows,
)

pytestmark = pytest.mark.integration
CISI = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cisi"


async def indexed_chunks(resources: Resources, tenant_id: uuid.UUID) -> dict[str, dict]:
    """Every chunk of a tenant in the index, by _id (search_after through all of them)."""
    alias = resources.indices.alias("documents")
    await resources.es.indices.refresh(index=alias)
    out: dict[str, dict] = {}
    after = None
    total_hits = 0
    while True:
        body = {
            "query": {"term": {"tenant_id": str(tenant_id)}},
            "size": 1000,
            "sort": [{"chunk_id": "asc"}],
            "_source": ["document_id", "version", "text"],
        }
        if after:
            body["search_after"] = after
        hits = (await resources.es.search(index=alias, **body))["hits"]["hits"]
        total_hits += len(hits)
        for h in hits:
            out[h["_id"]] = h["_source"]
        if len(hits) < 1000:
            break
        after = hits[-1]["sort"]
    assert total_hits == len(out), "a chunk id appears more than once"
    return out


async def expected_chunks(resources: Resources, tenant_id: uuid.UUID) -> dict[str, int]:
    """What the index must hold for a tenant, computed from PostgreSQL: chunk id -> version."""
    cfg = resources.settings.indexing
    info = resources.embedder.embedder.info
    max_tokens = min(cfg.chunk_max_tokens, info.max_seq_length - 2)
    async with resources.sessionmaker() as session:
        docs = list(await session.scalars(select(Document).where(Document.tenant_id == tenant_id)))
    expected: dict[str, int] = {}
    for doc in docs:
        for chunk in chunk_text(
            str(doc.id),
            doc.text,
            count_tokens=resources.embedder.embedder.count_tokens,
            max_tokens=max_tokens,
            overlap_tokens=min(cfg.chunk_overlap_tokens, max_tokens // 2),
            title=doc.title,
        ):
            expected[chunk.id] = doc.version
    return expected


async def assert_index_matches_database(resources: Resources, tenant_id: uuid.UUID) -> int:
    expected = await expected_chunks(resources, tenant_id)
    actual = await indexed_chunks(resources, tenant_id)
    assert set(actual) == set(expected), (
        f"missing {len(set(expected) - set(actual))}, extra {len(set(actual) - set(expected))}"
    )
    assert all(actual[cid]["version"] == v for cid, v in expected.items())
    return len(expected)


def unique_docs(n: int, tag: str) -> list[NewDocument]:
    """Documents with text no earlier run has embedded (the embedding cache cannot help)."""
    nonce = uuid.uuid4().hex
    return [
        NewDocument(
            text=f"Document {i} of run {nonce}. "
            + " ".join(f"word{(i * 7 + j) % 97}" for j in range(60)),
            content_type="text/plain",
            source=f"{tag}-{i}",
            extracted=True,
        )
        for i in range(n)
    ]


async def store(resources: Resources, tenant_id: uuid.UUID, docs: list[NewDocument]) -> None:
    async with resources.sessionmaker() as session, session.begin():
        await DocumentService(session, tenant_id, resources.settings).create_many(docs)


@pytest.mark.slow
async def test_ingest_cisi_every_chunk_exactly_once(resources: Resources) -> None:
    tenant = await make_tenant(resources)
    summary = await ingest(
        resources, tenant.id, documents_from_collection(CISI), index="here", workers=2
    )
    assert summary.documents == 1460 and summary.created == 1460
    assert summary.indexed_by == "here" and summary.index_failed == 0
    async with resources.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Document).where(Document.tenant_id == tenant.id)
        )
    assert count == 1460
    assert await outbox_rows(resources, tenant.id) == 0
    chunks = await assert_index_matches_database(resources, tenant.id)
    assert chunks == summary.chunks >= 1460
    # Documents keep their CISI ids.
    async with resources.sessionmaker() as session:
        ids = set(
            await session.scalars(
                select(Document.metadata_["cisi_id"].astext).where(Document.tenant_id == tenant.id)
            )
        )
    assert ids == {str(i) for i in range(1, 1461)}


@pytest.mark.slow
async def test_killed_indexer_loses_nothing_and_duplicates_nothing(
    resources: Resources, settings: Settings
) -> None:
    tenant = await make_tenant(resources)
    await store(resources, tenant.id, unique_docs(240, "kill"))
    total = await outbox_rows(resources, tenant.id)
    assert total == 240

    proc = indexer_process(settings, MYAISERV_INDEXING__BATCH_SIZE="16")
    try:
        # Kill it hard once it has made progress but before it is done.
        progressed = await eventually(
            lambda: _between(resources, tenant.id, 1, total - 1), within=180, interval=0.2
        )
        assert progressed, "indexer made no progress"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = await outbox_rows(resources, tenant.id)
    assert 0 < left < total

    restarted = indexer_process(settings, MYAISERV_INDEXING__BATCH_SIZE="16")
    try:
        assert await eventually(
            lambda: _between(resources, tenant.id, 0, 0), within=180, interval=0.5
        ), "restarted indexer did not finish"
    finally:
        restarted.terminate()
        restarted.wait(timeout=60)
    assert await assert_index_matches_database(resources, tenant.id) == 240


async def _between(resources: Resources, tenant_id: uuid.UUID, low: int, high: int) -> bool:
    return low <= await outbox_rows(resources, tenant_id) <= high


async def test_two_workers_with_concurrent_updates(resources: Resources) -> None:
    tenant = await make_tenant(resources)
    docs = unique_docs(120, "pair")
    await store(resources, tenant.id, docs)
    async with resources.sessionmaker() as session:
        ids = list(
            await session.scalars(select(Document.id).where(Document.tenant_id == tenant.id))
        )

    async def keep_updating() -> None:
        for i, doc_id in enumerate(ids[:40]):
            async with resources.sessionmaker() as session, session.begin():
                service = DocumentService(session, tenant.id, resources.settings)
                await service.update(doc_id, {"text": f"Rewritten {i} {uuid.uuid4().hex}"})
            await asyncio.sleep(0.01)

    workers = [Worker(resources, name=f"w{i}") for i in range(2)]
    await asyncio.gather(keep_updating(), *(w.drain() for w in workers))
    await drain(resources)  # what arrived after the workers went idle
    assert await outbox_rows(resources, tenant.id) == 0
    assert await assert_index_matches_database(resources, tenant.id) == 120


async def test_an_idle_indexer_wakes_on_a_committed_write(resources: Resources) -> None:
    """An idle indexer does not wait for its next poll (an hour here): the outbox NOTIFY
    of a committed write wakes it (a rolled-back write leaves nothing to index)."""
    await drain(resources)
    hourly = resources.settings.model_copy(
        update={
            "indexing": resources.settings.indexing.model_copy(update={"poll_interval_s": 3600})
        }
    )
    worker = Worker(dataclasses.replace(resources, settings=hourly), name="listener")
    tasks = [
        asyncio.create_task(worker.listen()),
        asyncio.create_task(worker.drain(idle_exit=False)),
    ]
    try:
        tenant = await make_tenant(resources)
        with contextlib.suppress(RuntimeError):
            async with resources.sessionmaker() as session, session.begin():
                await DocumentService(session, tenant.id, resources.settings).create_many(
                    unique_docs(1, "rolled-back")
                )
                raise RuntimeError("roll back")
        await store(resources, tenant.id, unique_docs(3, "notify"))
        assert await eventually(lambda: _none_left(resources, tenant.id), within=30)
        assert await assert_index_matches_database(resources, tenant.id) == 3
    finally:
        worker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


async def _none_left(resources: Resources, tenant_id: uuid.UUID) -> bool:
    return await outbox_rows(resources, tenant_id) == 0


async def test_elasticsearch_down_writes_accepted_then_indexed(
    api, tenant: TenantKey, resources: Resources, stack: Stack
) -> None:
    await asyncio.to_thread(stack.stop, "elasticsearch")
    try:
        ids = []
        for i in range(5):
            resp = await api.post(
                "/v1/documents", json={"text": f"written while the index was down {i}"}
            )
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        # The worker tries, fails, keeps the rows.
        await Worker(resources, name="outage").drain(idle_exit=True, max_seconds=20)
        assert await outbox_rows(resources, tenant.id) == 5
    finally:
        await asyncio.to_thread(stack.start, "elasticsearch")

    async def all_indexed() -> bool:
        await Worker(resources, name="recovery").drain(idle_exit=True)
        return await outbox_rows(resources, tenant.id) == 0

    assert await eventually(all_indexed, within=120, interval=1.0)
    assert await assert_index_matches_database(resources, tenant.id) == 5


async def test_stale_version_never_overwrites_newer(api, tenant: TenantKey, resources: Resources):
    doc = (await api.post("/v1/documents", json={"text": "first version text"})).json()
    await api.patch(f"/v1/documents/{doc['id']}", json={"text": "second version text"})
    await drain(resources)
    [(chunk_id, chunk)] = (await indexed_chunks(resources, tenant.id)).items()
    assert chunk["version"] == 2

    # A slow writer arrives late with version 1 of the same chunk id.
    stale = {**chunk, "version": 1, "text": "first version text", "tenant_id": str(tenant.id)}
    serving = await resources.indices.current_index("documents")
    assert serving is not None
    outcomes = await write(resources.es, [Action("late", "index", serving, chunk_id, 1, stale)])
    assert outcomes["late"].status == "ok" and outcomes["late"].failures == []
    # ...and an outbox row of version 1 replayed after version 2 changes nothing either.
    async with resources.sessionmaker() as session, session.begin():
        session.add(
            OutboxEvent(
                tenant_id=tenant.id,
                kind="documents",
                entity_id=uuid.UUID(doc["id"]),
                op="upsert",
                version=1,
            )
        )
    await drain(resources)
    [(_, now)] = (await indexed_chunks(resources, tenant.id)).items()
    assert now["version"] == 2 and now["text"] == "second version text"


async def test_a_write_to_an_index_dropped_since_never_creates_it_again(resources: Resources):
    """A batch chose its targets, then a reindex or model switch swapped the alias and
    dropped the old index before the batch wrote (a slow embedding call is enough). The
    late write is refused and retried with fresh targets; Elasticsearch does not create
    the index again from the template (an orphan behind no alias, holding that batch)."""
    dropped = await resources.indices.create_index("documents")
    await resources.es.indices.delete(index=dropped)
    source = {"tenant_id": str(uuid.uuid4()), "text": "a late write", "version": 1}
    try:
        late = [Action("late", "index", dropped, "late:0", 1, source)]
        outcomes = await write(resources.es, late)
        assert outcomes["late"].status == RETRY
        assert outcomes["late"].reason == "index_not_found_exception"
        assert not await resources.es.indices.exists(index=dropped)
        # A delete of a chunk in a dropped index is moot: done, and nothing is created.
        gone = await write(resources.es, [Action("gone", "delete", dropped, "late:0", 2)])
        assert gone["gone"].status == OK
        assert not await resources.es.indices.exists(index=dropped)
    finally:  # an orphan made by a regression is not left to the other tests
        await resources.es.indices.delete(index=dropped, ignore_unavailable=True)


async def test_an_index_made_before_write_aliases_gets_its_alias_from_index_init(
    settings: Settings, resources: Resources
):
    """Indices made before writes went through write aliases (or restored from such a
    snapshot) get one from `index init` (and each indexer's start), so writes reach them."""
    prefix = f"{settings.es.index_prefix}-prewrite"
    manager = IndexManager(resources.es, prefix, resources.indices.model, resources.indices.options)
    await manager.put_template("runs")
    older = f"{manager.alias('runs')}-v{SPECS['runs'].version}-20250101000000-abcd"
    await resources.es.indices.create(
        index=older, aliases={manager.alias("runs"): {"is_write_index": True}}
    )
    try:
        assert not await resources.es.indices.exists_alias(name=write_alias(older))
        assert await manager.ensure("runs") == older
        assert await resources.es.indices.exists_alias(index=older, name=write_alias(older))
        source = {"tenant_id": str(uuid.uuid4()), "input": "a run", "version": 1}
        outcomes = await write(resources.es, [Action("run", "index", older, "run-1", 1, source)])
        assert outcomes["run"].status == OK, outcomes["run"]
    finally:
        await resources.es.indices.delete(index=older)
        await resources.es.indices.delete_index_template(name=manager.template_name("runs"))


@pytest.mark.slow
async def test_reindex_under_concurrent_searches(resources: Resources) -> None:
    tenant = await make_tenant(resources)
    await store(resources, tenant.id, unique_docs(60, "reindex"))
    await drain(resources)
    alias = resources.indices.alias("documents")
    before = await resources.indices.current_index("documents")

    stop = asyncio.Event()
    failures: list[str] = []
    searches = 0

    async def search_forever() -> None:
        nonlocal searches
        while not stop.is_set():
            try:
                resp = await resources.es.search(
                    index=alias,
                    query={"bool": {"filter": [{"term": {"tenant_id": str(tenant.id)}}]}},
                    size=1,
                )
                if resp["hits"]["total"]["value"] == 0:
                    failures.append("empty result")
            except Exception as exc:  # noqa: BLE001 - every failure is counted and asserted on
                failures.append(repr(exc))
            searches += 1
            await asyncio.sleep(0.02)

    async def write_meanwhile() -> None:
        await store(resources, tenant.id, unique_docs(10, "during"))
        await Worker(resources, name="during").drain()

    searcher = asyncio.create_task(search_forever())
    try:
        result, _ = await asyncio.gather(reindex(resources, "documents"), write_meanwhile())
        await drain(resources)
    finally:
        stop.set()
        await searcher
    assert failures == []
    assert searches > 10
    assert result.old_index == before
    assert await resources.indices.current_index("documents") == result.new_index != before
    assert not await resources.es.indices.exists(index=before)
    assert await assert_index_matches_database(resources, tenant.id) >= 70


async def test_index_built_with_another_model_is_refused(resources: Resources) -> None:
    other = ModelInfo("some-other-model", resources.indices.model.dims, 256)
    manager = IndexManager(resources.es, resources.indices.prefix, other, resources.indices.options)
    with pytest.raises(IndexModelMismatchError, match="some-other-model"):
        await manager.check_model("documents")
    await resources.indices.check_model("documents")  # the configured model passes


async def test_poison_items_are_dead_lettered_with_the_reason(resources: Resources) -> None:
    """Rows Elasticsearch refuses for good (here: a 40 KB metadata value written before the
    API capped them, an 'immense term') go to dead_letters; the rest of the batch lands."""
    tenant = await make_tenant(resources)
    async with resources.sessionmaker() as session, session.begin():
        poison = Document(
            tenant_id=tenant.id,
            title="legacy row",
            content_type="text/plain",
            text="a row from before the metadata limit",
            content_hash=uuid.uuid4().hex,
            metadata_={"blob": "x" * 40_000},
        )
        fine = Document(
            tenant_id=tenant.id,
            title="fine row",
            content_type="text/plain",
            text="an ordinary row in the same batch",
            content_hash=uuid.uuid4().hex,
        )
        session.add_all([poison, fine])
        await session.flush()
        for doc in (poison, fine):
            session.add(
                OutboxEvent(
                    tenant_id=tenant.id, kind="documents", entity_id=doc.id, op="upsert", version=1
                )
            )
    await drain(resources)
    assert await outbox_rows(resources, tenant.id) == 0
    async with resources.sessionmaker() as session:
        dead = list(
            await session.scalars(select(DeadLetter).where(DeadLetter.tenant_id == tenant.id))
        )
    assert [(d.entity_id, d.kind, d.op) for d in dead] == [(poison.id, "documents", "upsert")]
    assert dead[0].reason and dead[0].error
    indexed = await indexed_chunks(resources, tenant.id)
    assert {c["document_id"] for c in indexed.values()} == {str(fine.id)}


async def test_api_caps_metadata_values(api) -> None:
    resp = await api.post("/v1/documents", json={"text": "x", "metadata": {"blob": "y" * 9000}})
    assert resp.status_code == 422
    assert "metadata.blob" in resp.json()["detail"]
