"""Both embedding models side by side (`make bench-models`): all-MiniLM-L6-v2 and
bge-small-en-v1.5 on this machine, one after the other, each measured the same way:

- raw encode: CISI chunked as the indexer chunks it for that model, encoded by the model
  alone on every core (the physical limit of ingest), chunks/s;
- ingest: CISI through the HTTP API into a deployment of the model's own (a fresh
  database, indices and Redis database each round: the embedding cache is cold), one
  indexer, timed from the first request until every document is searchable, chunks/s;
- relevance: `myaiserv eval`'s modes on CISI (deterministic: measured once);
- uncached hybrid search: CISI's queries through the API, each paired with the direct
  client on the same model (the query embedding, with the model's query instruction, plus
  the same bm25 and kNN bodies in one `_msearch`), which goes first alternating; p50 of
  each, server time, and their ratio.

BENCH_ROUNDS rounds (default 3) of raw encode, ingest and search; each figure is the
median with the lowest and highest round. Keys `models.<model>.*` in bench/results.json.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
from redis.asyncio import Redis

from bench import report
from bench.against_peers import chunks_for
from bench.common import bench_settings, prepare_database, rounds
from bench.search import CISI, direct_client, paired
from bench.spread import over_rounds
from myaiserv.config import Settings
from myaiserv.datasets.trec import load_collection
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import (
    indexers_alive,
    local_api,
    private_deployment,
    tenant_key,
)
from myaiserv.evaluation.runner import EvalClient, evaluate, table
from myaiserv.search.client import create_es_client

MODELS = ("all-MiniLM-L6-v2", "bge-small-en-v1.5")
REDIS_DB = 8


def deployment(model: str) -> tuple[Settings, dict[str, str]]:
    """The benchmark's settings for ``model``: a deployment of the model's own."""
    base, env = bench_settings("myaiserv_bench", REDIS_DB, "bench")
    settings, private = private_deployment(base, model, purpose="benchmodels")
    return settings, {**env, **private}


async def fresh(settings: Settings) -> None:
    """An empty deployment: database, indices and the Redis database (cold caches)."""
    await prepare_database(settings, fresh=True)
    es = create_es_client(settings)
    try:
        names = list((await es.indices.get(index=f"{settings.es.index_prefix}-*")).body)
        if names:
            await es.indices.delete(index=",".join(names))
    finally:
        await es.close()
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


def raw_encode(settings: Settings) -> tuple[int, float]:
    """(chunks, chunks/s): CISI's chunks for this model, encoded by the model alone."""
    embedder = Embedder.from_settings(settings.embedding)
    try:
        texts = [c["text"] for c in chunks_for(settings, embedder)]
        embedder.encode_sync(texts[:64])  # warm
        started = time.perf_counter()
        embedder.encode_sync(texts)
        return len(texts), len(texts) / (time.perf_counter() - started)
    finally:
        embedder.close()


async def tenant_of(settings: Settings) -> tuple[str, str]:
    """(tenant id, a fresh read/write key) of the benchmark's tenant."""
    engine = create_engine(settings)
    try:
        tenant, key = await tenant_key(create_sessionmaker(engine), "bench-models")
        return str(tenant), key
    finally:
        await engine.dispose()


async def wait_for_indexer(settings: Settings) -> None:
    """Until the local indexer beats (its model loaded): ingest is timed from there."""
    engine = create_engine(settings)
    try:
        sessions = create_sessionmaker(engine)
        for _ in range(600):  # the model loads in seconds; two minutes at most
            if await indexers_alive(sessions, settings.indexing.heartbeat_ttl_s):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError("the local indexer never beat")
    finally:
        await engine.dispose()


async def chunk_count(settings: Settings) -> int:
    es = create_es_client(settings)
    try:
        alias = f"{settings.es.index_prefix}-documents"
        await es.indices.refresh(index=alias)
        return int((await es.count(index=alias))["count"])
    finally:
        await es.close()


async def flush(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def one_round(model: str, n: int) -> dict[str, Any]:
    settings, env = deployment(model)
    collection = load_collection(CISI)
    queries = [query.text for query in collection.queries]
    figures: dict[str, Any] = {}
    _, figures["raw_encode_chunks_per_s"] = await asyncio.to_thread(raw_encode, settings)
    await fresh(settings)
    tenant, key = await tenant_of(settings)
    async with local_api(env) as (url, _):
        await wait_for_indexer(settings)
        client = EvalClient(url, key)
        try:
            started = time.perf_counter()
            expected = await client.store(collection)
            await client.wait_indexed(collection, expected)
            seconds = time.perf_counter() - started
            figures["chunks"] = await chunk_count(settings)
            figures["ingest_chunks_per_s"] = figures["chunks"] / seconds
            if n == 0:
                result = await evaluate(client, collection)
                print(f"bench: {model}\n{table(result)}", flush=True)
                figures["relevance"] = result.scores
        finally:
            await client.close()
        headers = {"Authorization": f"Bearer {key}", "Cache-Control": "no-cache"}
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http,
            direct_client(settings, tenant) as direct,
        ):
            for text_ in queries[:5]:  # both warm
                (await http.post("/v1/search", json={"query": text_})).raise_for_status()
                await direct(text_)
            await flush(settings)  # no cached query embedding, no cached page
            api, direct_ms = await paired(http, direct, queries)
    figures["search_server_p50_ms"] = statistics.median(api.server)
    figures["search_p50_ms"] = statistics.median(api.client)
    figures["direct_p50_ms"] = statistics.median(direct_ms)
    figures["search_vs_direct"] = figures["search_p50_ms"] / figures["direct_p50_ms"]
    print(
        f"bench: {model} round {n + 1}: raw encode {figures['raw_encode_chunks_per_s']:.1f}, "
        f"ingest {figures['ingest_chunks_per_s']:.1f} chunks/s ({figures['chunks']} chunks); "
        f"uncached hybrid p50 {figures['search_p50_ms']:.1f} ms, direct "
        f"{figures['direct_p50_ms']:.1f} ms",
        flush=True,
    )
    return figures


SPREAD = (
    "raw_encode_chunks_per_s",
    "ingest_chunks_per_s",
    "search_p50_ms",
    "search_server_p50_ms",
    "direct_p50_ms",
    "search_vs_direct",
)


async def main() -> None:
    n_rounds = rounds()
    results: dict[str, Any] = {}
    for model in MODELS:
        per_round = [await one_round(model, n) for n in range(n_rounds)]
        figures: dict[str, Any] = {"chunks": per_round[0]["chunks"]}
        figures["relevance"] = per_round[0]["relevance"]
        for key in SPREAD:
            figures.update(over_rounds(key, [r[key] for r in per_round], 3))
        results[model] = figures
    how = (
        f"bench/models.py on this machine, {n_rounds} rounds per model, one model after the "
        "other: raw encode of CISI's chunks (each model's own chunking) by the model alone "
        "on every core; ingest of CISI through the API and one indexer into a fresh "
        "deployment of the model's own (cold caches), from the first request until every "
        "document is searchable; relevance through `myaiserv eval`'s modes (once); "
        "uncached hybrid searches of CISI's queries through the API, each paired with the "
        "direct client on the same model (the query embedding with the model's query "
        "instruction plus the same `_msearch`), client-side p50 of each and their ratio. "
        "Median (lowest-highest round)."
    )
    report.save("models", results, {"how": how})


if __name__ == "__main__":
    asyncio.run(main())
