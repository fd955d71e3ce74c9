"""Ingest benchmark: CISI end to end (HTTP API -> PostgreSQL + outbox -> indexer ->
Elasticsearch), beside raw `SentenceTransformer.encode` of the same chunks, which is the
physical limit on this machine.

Runs against the local stack, in a database, Redis database and index prefix of its own
(created fresh, so the embedding cache is cold). Writes bench/results.json and
bench/REPORT.md. Run it with `make bench`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench import report
from bench.common import bench_settings, prepare_database
from indexers.chunk import chunk_text
from indexers.ingest import documents_from_collection
from myaiserv.auth.service import TenantService
from myaiserv.config import Settings
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import OutboxEvent
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import free_port, spawn
from myaiserv.search.client import create_es_client

ROOT = Path(__file__).resolve().parents[1]
CISI = Path(os.environ.get("MYAISERV_CISI", ROOT.parent / "shared" / "data" / "cisi"))
BENCH_DB = "myaiserv_bench"
BENCH_REDIS_DB = 2
PREFIX = "bench"


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's resident-set high-water mark."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def reset_index_and_cache(settings: Settings) -> None:
    from redis.asyncio import Redis

    es = create_es_client(settings)
    try:
        found = await es.options(ignore_status=404).indices.get(index=f"{PREFIX}-*")
        names = list(found.body) if found.meta.status == 200 else []
        if names:
            await es.indices.delete(index=",".join(names))
    finally:
        await es.close()
    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()
    await redis.aclose()


def raw_encode(settings: Settings, docs: list) -> tuple[int, float]:
    """Chunk exactly as the indexer does, then time one encode call over every chunk."""
    embedder = Embedder(settings.embedding.model, batch_size=settings.embedding.batch_size)
    info = embedder.load()
    cfg = settings.indexing
    max_tokens = min(cfg.chunk_max_tokens, info.max_seq_length - 2)
    texts = [
        c.text
        for d in docs
        for c in chunk_text(
            "x",
            d.text,
            count_tokens=embedder.count_tokens,
            max_tokens=max_tokens,
            overlap_tokens=min(cfg.chunk_overlap_tokens, max_tokens // 2),
            title=d.title,
        )
    ]
    embedder.encode_sync(texts[:64])  # warm-up
    started = time.perf_counter()
    embedder.model.encode(
        texts, batch_size=settings.embedding.batch_size, normalize_embeddings=True
    )
    seconds = time.perf_counter() - started
    embedder.close()
    return len(texts), len(texts) / seconds


async def end_to_end(settings: Settings, env: dict[str, str], docs: list) -> dict[str, float]:
    """One round: fresh database, indices and cache; the API and an indexer as separate
    processes; from the first POST until the outbox is empty."""
    await prepare_database(settings, fresh=True)
    await reset_index_and_cache(settings)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    async with sessions() as session, session.begin():
        issued = await TenantService(session).create_tenant("bench", scopes=["read", "write"])

    port = free_port()
    env = {**env, "MYAISERV_INDEXING__METRICS_PORT": str(free_port())}
    indexer = spawn(["indexer", "run"], env)
    api = spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env)
    es = create_es_client(settings)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {issued.plaintext}"},
            timeout=120,
        ) as client:
            for _ in range(240):
                try:
                    ready = (await client.get("/ready")).status_code == 200
                    alias = await es.indices.exists_alias(name=f"{PREFIX}-documents")
                    if ready and alias:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.5)
            else:
                raise SystemExit("bench: API or indexer did not start")
            started = time.perf_counter()
            for i in range(0, len(docs), 100):
                batch = [
                    {
                        "text": d.text,
                        "title": d.title,
                        "source": d.source,
                        "tags": d.tags,
                        "metadata": d.metadata,
                    }
                    for d in docs[i : i + 100]
                ]
                resp = await client.post("/v1/documents/batch", json={"documents": batch})
                resp.raise_for_status()
            while True:
                async with sessions() as session:
                    left = await session.scalar(select(func.count(OutboxEvent.id)))
                if not left:
                    break
                await asyncio.sleep(0.2)
            seconds = time.perf_counter() - started
        await es.indices.refresh(index=f"{PREFIX}-documents")
        chunks = int((await es.count(index=f"{PREFIX}-documents"))["count"])
        worker_rss, api_rss = peak_rss_mb(indexer.pid), peak_rss_mb(api.pid)
    finally:
        for proc in (api, indexer):
            proc.send_signal(signal.SIGTERM)
        for proc in (api, indexer):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        await es.close()
        await engine.dispose()
    return {
        "seconds": seconds,
        "chunks": chunks,
        "worker_rss": worker_rss,
        "api_rss": api_rss,
    }


async def main() -> None:
    settings, env = bench_settings(BENCH_DB, BENCH_REDIS_DB, PREFIX)
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    docs = list(documents_from_collection(CISI))
    print(f"bench: {len(docs)} CISI documents, {rounds} rounds", flush=True)

    raws, e2es, ratios, rss_w, rss_a, secs = [], [], [], [], [], []
    chunks = 0
    for n in range(1, rounds + 1):
        # Raw encode right before each end-to-end round: both see the machine as it is then.
        _, raw_cps = raw_encode(settings, docs)
        result = await end_to_end(settings, env, docs)
        chunks = int(result["chunks"])
        cps = chunks / result["seconds"]
        raws.append(raw_cps)
        e2es.append(cps)
        ratios.append(cps / raw_cps)
        secs.append(result["seconds"])
        rss_w.append(result["worker_rss"])
        rss_a.append(result["api_rss"])
        print(
            f"bench: round {n}: end to end {cps:.1f} chunks/s, raw {raw_cps:.1f} chunks/s, "
            f"ratio {cps / raw_cps:.1%}",
            flush=True,
        )

    seconds = statistics.median(secs)
    figures = {
        "documents": len(docs),
        "chunks": chunks,
        "rounds": rounds,
        "seconds": round(seconds, 2),
        "docs_per_s": round(len(docs) / seconds, 2),
        "chunks_per_s": round(statistics.median(e2es), 2),
        "raw_encode_chunks_per_s": round(statistics.median(raws), 2),
        "ratio_to_raw_encode": round(statistics.median(ratios), 4),
        "ratio_min": round(min(ratios), 4),
        "ratio_max": round(max(ratios), 4),
        "worker_peak_rss_mb": round(max(rss_w), 1),
        "api_peak_rss_mb": round(max(rss_a), 1),
    }
    method = {
        "how": (
            f"median of {rounds} rounds (ratio: median of the per-round ratios, with min and "
            "max); each round: raw = one SentenceTransformer.encode call over every chunk "
            f"text (batch size {settings.embedding.batch_size}) after a warm-up, in the "
            "benchmark process; then end to end = fresh database, indices and cold embedding "
            "cache, one API and one indexer process, first POST /v1/documents/batch (100 "
            "documents each) until the outbox is empty. RSS = VmHWM, the highest over rounds."
        )
    }
    report.save("ingest", figures, method)
    for key, value in figures.items():
        print(f"ingest.{key} = {value}")


if __name__ == "__main__":
    asyncio.run(main())
