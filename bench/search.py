"""Search benchmark and relevance table, in one run, on the CISI index.

A local API and indexer (child processes, as deployed) over a database, Redis database and
index prefix of the benchmark's own; CISI is stored through the API (deduplicated, so a
re-run indexes nothing new). Then:

1. relevance: `myaiserv eval`'s runner, bm25 / vector / hybrid, through the API;
2. latency: every CISI query once, sequentially (one client), through `POST /v1/search`
   (hybrid, the defaults: size 10, window 100, highlights) with Redis flushed first, so
   the query embedding and the result page are both computed (uncached), each paired
   with the limit: the same two Elasticsearch searches (bodies built by the same code)
   sent straight with elasticsearch-py in one `_msearch`, plus the query embedding with
   the same model on the same embedding backend in this process, run back to back with
   the API call, which goes first alternating (so both see the machine at the same
   moment); then (first round only) the same queries again (each page now cached); bm25
   and vector likewise, uncached; 5 warm-up queries before; p50/p99 over the 112 queries;
   req/s of one client = queries / total time (the paired run: the sum of the API calls'
   times); the uncached passes in BENCH_ROUNDS rounds (default 3), each figure the median
   of the rounds' with their lowest and highest (`<figure>_min`, `<figure>_max`);
3. throughput: the same, with 4 concurrent clients.

Server time is the API's `Server-Timing` header; client time includes HTTP on loopback.
Writes bench/results.json and bench/REPORT.md (sections `relevance` and `search`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from bench import report
from bench.common import bench_settings, peak_rss_mb, prepare_database, rounds
from bench.spread import over_rounds
from myaiserv.config import Settings
from myaiserv.datasets.trec import Collection, load_collection
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import local_api, tenant_key
from myaiserv.evaluation.runner import EvalClient, evaluate, table
from myaiserv.search import query as q
from myaiserv.search.client import create_es_client
from myaiserv.search.kinds import KINDS
from myaiserv.search.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
CISI = Path(os.environ.get("MYAISERV_CISI", ROOT.parent / "shared" / "data" / "cisi"))
DB = "myaiserv_bench_search"
REDIS_DB = 3
PREFIX = "benchsearch"
CONCURRENCY = 4


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def server_ms(resp: httpx.Response) -> float:
    return float(resp.headers["server-timing"].split("dur=")[1])


@dataclasses.dataclass
class Timings:
    """What ``/v1/search`` calls took: client and server times, cache outcomes."""

    client: list[float] = dataclasses.field(default_factory=list)
    server: list[float] = dataclasses.field(default_factory=list)
    cache: dict[str, int] = dataclasses.field(default_factory=dict)

    async def send(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        started = time.perf_counter()
        resp = await client.post("/v1/search", json=body)
        self.client.append((time.perf_counter() - started) * 1000)
        resp.raise_for_status()
        self.server.append(server_ms(resp))
        outcome = resp.headers.get("x-cache", "?")
        self.cache[outcome] = self.cache.get(outcome, 0) + 1

    def figures(self, seconds: float) -> dict[str, Any]:
        """Latencies, and req/s over ``seconds``."""
        return {
            "client_p50_ms": statistics.median(self.client),
            "client_p99_ms": percentile(self.client, 0.99),
            "server_p50_ms": statistics.median(self.server),
            "server_p99_ms": percentile(self.server, 0.99),
            "rps": len(self.client) / seconds,
            "cache": self.cache,
        }


async def timed_requests(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    """Send every body once with ``concurrency`` clients; latencies and req/s."""
    queue = list(bodies)
    timings = Timings()

    async def worker() -> None:
        while queue:
            await timings.send(client, queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timings.figures(time.perf_counter() - started)


def search_plan(settings: Settings, tenant_id: str, text_: str) -> Plan:
    """The plan the API makes of ``{"query": text_}`` (hybrid, the defaults) for a tenant."""
    cfg = settings.search
    return Plan(
        tenant_id=tenant_id, query=text_, kinds=list(KINDS), mode="hybrid",
        size=cfg.default_size, filters=[{"term": {"tenant_id": tenant_id}}],
        facets=[], histogram=None, fields=[], highlight=True, collapse=False,
        window=cfg.rank_window, fusion=cfg.fusion, normalizer=cfg.normalizer,
        rrf_k=cfg.rrf_k, weights={},
        num_candidates=cfg.num_candidates, stemmer=cfg.app_stemmer,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def direct_client(
    settings: Settings, tenant_id: str
) -> AsyncIterator[Callable[[str], Awaitable[float]]]:
    """The limit, one query at a time: the query embedding plus the same bm25 and kNN
    bodies (built by the same code) in one `_msearch` over the indices of
    ``settings.es.index_prefix``; yields ``search(text) -> ms``."""
    embedder = Embedder.from_settings(settings.embedding)
    await embedder.aload()
    es = create_es_client(settings)
    window = settings.search.rank_window
    aliases = ",".join(f"{settings.es.index_prefix}-{kind}" for kind in KINDS)

    async def search(text_: str) -> float:
        started = time.perf_counter()
        query = embedder.query_instruction + text_  # as the API embeds a search's query
        vector = (await embedder.encode([query]))[0].tolist()
        plan = search_plan(settings, tenant_id, text_)
        searches = [
            {"index": aliases},
            q.bm25_body(plan, window),
            {"index": aliases},
            q.knn_body(plan, vector, window),
        ]
        await es.msearch(searches=searches)
        return (time.perf_counter() - started) * 1000

    try:
        yield search
    finally:
        await es.close()
        embedder.close()


async def paired(
    http: httpx.AsyncClient, direct: Callable[[str], Awaitable[float]], queries: list[str]
) -> tuple[Timings, list[float]]:
    """Each query through the API (uncached: every query is new to the cache) and straight
    to Elasticsearch, back to back, which goes first alternating: both see the machine as
    it is at that moment (its speed drifts). (the API's timings, the direct times in ms)."""
    timings = Timings()
    direct_ms: list[float] = []
    for i, text_ in enumerate(queries):
        if i % 2:
            direct_ms.append(await direct(text_))
            await timings.send(http, {"query": text_})
        else:
            await timings.send(http, {"query": text_})
            direct_ms.append(await direct(text_))
    return timings, direct_ms


async def cisi_tenant(settings: Settings, env: dict[str, str]) -> tuple[UUID, str]:
    """The benchmark's database migrated, its indices made, and a fresh key of its tenant
    (the one that owns the stored CISI documents)."""
    await prepare_database(settings, fresh=False)
    init = [sys.executable, "-m", "myaiserv", "index", "init"]
    await asyncio.to_thread(subprocess.run, init, env=env, check=True)
    engine = create_engine(settings)
    try:
        return await tenant_key(create_sessionmaker(engine), "bench-search")
    finally:
        await engine.dispose()


async def store_cisi(client: EvalClient, collection: Collection) -> None:
    """CISI stored through the API (deduplicated: a re-run stores nothing new) and indexed."""
    expected = await client.store(collection)
    print(f"bench: {expected} CISI documents stored; waiting for the index", flush=True)
    await client.wait_indexed(collection, expected)


def merged_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    n_rounds = rounds()
    tenant_id, key = await cisi_tenant(settings, env)
    collection = load_collection(CISI)
    queries = [query.text for query in collection.queries]

    async with local_api(env) as (url, api):
        client = EvalClient(url, key)
        try:
            await store_cisi(client, collection)
            print("bench: relevance (bm25, vector, hybrid, hybrid-rrf) ...", flush=True)
            relevance = await evaluate(client, collection)
        finally:
            await client.close()
        print(table(relevance), flush=True)

        from myaiserv.cache.client import create_redis_client

        redis = create_redis_client(settings)
        headers = {"Authorization": f"Bearer {key}"}
        bodies = [{"query": t} for t in queries]
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http,
            direct_client(settings, str(tenant_id)) as direct,
        ):
            await timed_requests(http, [{"query": q_} for q_ in queries[:5]], 1)
            for text_ in queries[:5]:
                await direct(text_)
            runs: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
            cached: dict[str, Any] = {}
            for n in range(n_rounds):
                await redis.flushdb()  # cold: no cached embedding, no cached page
                api_timings, direct_ms = await paired(http, direct, queries)
                uncached = api_timings.figures(sum(api_timings.client) / 1000)
                limit = {
                    "p50_ms": statistics.median(direct_ms),
                    "p99_ms": percentile(direct_ms, 0.99),
                }
                if n == 0:
                    cached = await timed_requests(http, bodies, 1)
                modes = {}
                for mode in ("bm25", "vector"):
                    await redis.flushdb()
                    modes[mode] = await timed_requests(
                        http, [{**b, "mode": mode} for b in bodies], 1
                    )
                runs.append((uncached, limit, modes))
                print(f"bench: latency round {n + 1} of {n_rounds}", flush=True)
            await redis.flushdb()
            uncached_load = await timed_requests(http, bodies, CONCURRENCY)
            cached_load = await timed_requests(http, bodies * 3, CONCURRENCY)
        await redis.aclose()
        web_rss = peak_rss_mb(api.pid)

    hybrid = [r[0] for r in runs]
    limits = [r[1] for r in runs]
    figures = {
        "queries": len(queries),
        "rounds": n_rounds,
        "backend": settings.embedding.backend,
        **over_rounds("hybrid_uncached_p50_ms", [r["client_p50_ms"] for r in hybrid]),
        **over_rounds("hybrid_uncached_p99_ms", [r["client_p99_ms"] for r in hybrid]),
        **over_rounds("hybrid_uncached_server_p50_ms", [r["server_p50_ms"] for r in hybrid]),
        **over_rounds("hybrid_uncached_rps_1", [r["rps"] for r in hybrid], 1),
        **{
            name: value
            for mode in ("bm25", "vector")
            for label, key, digits in (
                ("p50_ms", "client_p50_ms", 2),
                ("p99_ms", "client_p99_ms", 2),
                ("rps_1", "rps", 1),
            )
            for name, value in over_rounds(
                f"{mode}_uncached_{label}", [r[2][mode][key] for r in runs], digits
            ).items()
        },
        **over_rounds("direct_p50_ms", [d["p50_ms"] for d in limits]),
        **over_rounds("direct_p99_ms", [d["p99_ms"] for d in limits]),
        **over_rounds(
            "uncached_to_direct_p50",
            [h["client_p50_ms"] / d["p50_ms"] for h, d in zip(hybrid, limits, strict=True)],
            3,
        ),
        "cached_p50_ms": round(cached["server_p50_ms"], 3),
        "cached_client_p50_ms": round(cached["client_p50_ms"], 3),
        "cached_p99_ms": round(cached["server_p99_ms"], 3),
        "hybrid_uncached_rps": round(uncached_load["rps"], 1),
        "cached_rps": round(cached_load["rps"], 1),
        "concurrency": CONCURRENCY,
        "cache_outcomes": {
            "uncached": merged_counts([r["cache"] for r in hybrid]),
            "cached": cached["cache"],
            "uncached_load": uncached_load["cache"],
            "cached_load": cached_load["cache"],
        },
    }
    report.save(
        "relevance",
        {collection.name: relevance.scores, "queries": relevance.queries, "depth": relevance.depth},
        {"how": "myaiserv eval's runner through POST /v1/search: every judged query, chunks "
         "collapsed to documents, paged with the cursor down to 1000 documents; nDCG@10, "
         "MAP over those 1000, Recall@100; binary judgments."},
    )  # fmt: skip
    report.save(
        "search",
        figures,
        {"how": __doc__.split("\n\n", 2)[2].strip() if __doc__ else ""},
    )
    report.save(
        "memory",
        {"web_search_peak_rss_mb": round(web_rss, 1)},
        {"how_search": "VmHWM of the API process at the end of the search benchmark."},
        merge=True,
    )
    for name, value in figures.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
