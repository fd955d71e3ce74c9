"""Indexing processes that share a database and a machine: an ingest beside a running
indexer only stores and follows it (its progress counting what the indexer did); with no
indexer alive, or once the only one stops beating, the ingest indexes in its own process;
and two indexers on one machine never run more embedding threads than it has cores
(sampled from /proc while both drain one backlog; the same sampler, with core sharing
off, sees more)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from indexers.ingest import Progress, ingest
from myaiserv.config import Settings
from myaiserv.db.heartbeats import Beat, HeartbeatRepository
from myaiserv.db.models import IndexerHeartbeat
from myaiserv.documents.service import DocumentService, NewDocument
from myaiserv.embeddings.cores import cores
from myaiserv.resources import Resources
from tests.support import eventually, indexer_process, make_tenant, outbox_rows

pytestmark = pytest.mark.integration


def quick(resources: Resources, **indexing: Any) -> Resources:
    """The resources with other indexing settings (heartbeats, their time to live)."""
    updated = resources.settings.indexing.model_copy(update=indexing)
    settings = resources.settings.model_copy(update={"indexing": updated})
    return dataclasses.replace(resources, settings=settings)


def documents(n: int, tag: str, words: int = 60) -> list[NewDocument]:
    """Texts no earlier run embedded (the embedding cache cannot help)."""
    nonce = uuid.uuid4().hex
    return [
        NewDocument(
            text=f"{tag} {i} of {nonce}. " + " ".join(f"w{(i * 7 + j) % 89}" for j in range(words)),
            content_type="text/plain",
            source=f"{tag}-{i}",
            extracted=True,
        )
        for i in range(n)
    ]


async def heartbeats(resources: Resources) -> list[IndexerHeartbeat]:
    async with resources.sessionmaker() as session:
        return [row for row, _ in await HeartbeatRepository(session).processes()]


async def forget_heartbeats(resources: Resources) -> None:
    """Earlier tests' killed indexers leave rows that look alive for a while."""
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(delete(IndexerHeartbeat))


async def chunks_of(resources: Resources, tenant_id: uuid.UUID) -> int:
    alias = resources.indices.alias("documents")
    await resources.es.indices.refresh(index=alias)
    found = await resources.es.count(index=alias, query={"term": {"tenant_id": str(tenant_id)}})
    return int(found["count"])


def stop(proc: Any) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


async def test_ingest_beside_a_running_indexer_only_stores_and_follows_it(
    resources: Resources, settings: Settings
) -> None:
    await forget_heartbeats(resources)
    follower = quick(resources, heartbeat_ttl_s=10.0)
    tenant = await make_tenant(resources)
    proc = indexer_process(
        settings, MYAISERV_INDEXING__HEARTBEAT_S="0.5", MYAISERV_INDEXING__BATCH_SIZE="16"
    )
    try:

        async def beating() -> bool:
            return any(b.pid == proc.pid for b in await heartbeats(resources))

        assert await eventually(beating, within=180), "the indexer never wrote a heartbeat"
        seen: list[Progress] = []
        summary = await ingest(
            follower,
            tenant.id,
            documents(80, "follow"),
            batch_size=20,
            on_progress=seen.append,
            poll_s=0.2,
        )
        assert summary.documents == summary.created == 80
        assert summary.indexed_by == "indexers" and summary.index_failed == 0
        assert not any(p.indexing_here for p in seen)  # it never indexed itself
        assert {p.indexers for p in seen} == {1}
        indexed = [p.indexed for p in seen]
        assert indexed == sorted(indexed) and indexed[-1] == 80
        assert summary.chunks == await chunks_of(resources, tenant.id) >= 80
        assert summary.tokens > summary.chunks

        # The indexer's heartbeat counted that work (and more, from earlier tests' rows).
        async def counted() -> bool:
            rows = [b for b in await heartbeats(resources) if b.pid == proc.pid]
            return bool(rows) and rows[0].chunks >= summary.chunks and rows[0].tokens > 0

        assert await eventually(counted, within=30)
        assert not any(b.role == "ingest" for b in await heartbeats(resources))
    finally:
        stop(proc)
    # Stopped cleanly: its row is gone at once.
    assert not any(b.pid == proc.pid for b in await heartbeats(resources))


async def test_ingest_indexes_itself_with_no_indexer_alive_and_takes_over_from_a_dead_one(
    resources: Resources,
) -> None:
    await forget_heartbeats(resources)
    ttl = 3.0
    follower = quick(resources, heartbeat_s=0.5, heartbeat_ttl_s=ttl)
    tenant = await make_tenant(resources)

    seen: list[Progress] = []
    alone = await ingest(
        follower, tenant.id, documents(30, "alone"), on_progress=seen.append, poll_s=0.2
    )
    assert alone.indexed_by == "here" and alone.index_failed == 0
    assert seen[0].indexing_here and seen[-1].indexed == 30
    assert alone.chunks == await chunks_of(resources, tenant.id)
    assert await heartbeats(resources) == []  # its own row went with it

    # An indexer that died without a word: its row beats no more.
    async with resources.sessionmaker() as session, session.begin():
        await HeartbeatRepository(session).beat(
            Beat("indexer-gone", "indexer", socket.gethostname(), 1, 0, 0, 0, 0.0, 0.0)
        )
    seen.clear()
    started = time.monotonic()
    taken = await ingest(
        follower, tenant.id, documents(30, "orphan"), on_progress=seen.append, poll_s=0.2
    )
    assert taken.indexed_by == "here" and taken.index_failed == 0
    assert not seen[0].indexing_here  # it followed the indexer it took for alive
    took_over = next(i for i, p in enumerate(seen) if p.indexing_here)
    assert all(p.indexed == 0 for p in seen[:took_over])  # nobody indexed meanwhile
    assert time.monotonic() - started >= ttl - 1  # not before the heartbeat went stale
    assert taken.chunks + alone.chunks == await chunks_of(resources, tenant.id)


def running_embed_threads(pids: list[int]) -> dict[int, int]:
    """Per process: threads computing a text (named ``embed`` meanwhile: ``cores.py``)
    that are running or runnable now."""
    out = {}
    for pid in pids:
        running = 0
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            state = stat[stat.rindex(")") + 2]
            running += name == "embed" and state == "R"
        out[pid] = running
    return out


async def drain_with_two_indexers(
    resources: Resources, settings: Settings, folder: Path, *, share: bool
) -> list[dict[int, int]]:
    """Two indexer processes drain one backlog; /proc sampled every few ms meanwhile."""
    tenant = await make_tenant(resources)
    async with resources.sessionmaker() as session, session.begin():
        docs = documents(500, f"cores-{share}", words=120)
        await DocumentService(session, tenant.id, resources.settings).create_many(docs)
    env = {
        "MYAISERV_EMBEDDING__CORES_DIR": str(folder),
        "MYAISERV_EMBEDDING__SHARE_CORES": str(share).lower(),
        "MYAISERV_INDEXING__BATCH_SIZE": "16",
    }
    procs = [indexer_process(settings, **env) for _ in range(2)]
    samples: list[dict[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(running_embed_threads([p.pid for p in procs]))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:

        async def drained() -> bool:
            return await outbox_rows(resources, tenant.id) == 0

        assert await eventually(drained, within=600, interval=0.5), "the backlog never drained"
    finally:
        done.set()
        sampler.join()
        for proc in procs:
            stop(proc)
    assert await chunks_of(resources, tenant.id) >= 500
    return samples


@pytest.mark.slow
async def test_two_indexers_on_one_machine_never_run_more_embedding_threads_than_cores(
    resources: Resources, settings: Settings, tmp_path: Path
) -> None:
    shared = await drain_with_two_indexers(resources, settings, tmp_path / "a", share=True)
    busiest = Counter(sum(s.values()) for s in shared)
    assert max(busiest) <= cores(), f"threads running at once: {sorted(busiest.items())}"
    # Both embedded (each had threads running at some point), the cores were used.
    for pid in shared[0]:
        assert any(s.get(pid) for s in shared), f"indexer {pid} never embedded"
    assert max(busiest) == cores()

    # The control: the same processes with sharing off oversubscribe, and the sampler
    # sees it (so the bound above is the leases' doing).
    alone = await drain_with_two_indexers(resources, settings, tmp_path / "b", share=False)
    assert max(sum(s.values()) for s in alone) > cores()


async def test_a_heartbeat_row_says_what_the_process_did_and_goes_with_it(
    resources: Resources,
) -> None:
    from indexers.heartbeat import Heartbeat

    await forget_heartbeats(resources)
    beating = quick(resources, heartbeat_s=0.2)
    heart = Heartbeat(beating, "indexer", name=f"indexer-test-{uuid.uuid4().hex[:6]}")
    heart.record(rows=3, chunks=5, tokens=900)
    stop_event = asyncio.Event()
    task = asyncio.create_task(heart.run(stop_event))

    async def written() -> bool:
        rows = {b.name: b for b in await heartbeats(resources)}
        return heart.name in rows and rows[heart.name].tokens == 900

    assert await eventually(written, within=10, interval=0.1)
    stop_event.set()
    await task
    assert heart.name not in {b.name for b in await heartbeats(resources)}
