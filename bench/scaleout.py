"""Scale-out benchmark: `/v1/search` req/s with 1 and with 3 API instances behind nginx
(the local web tier, `stack up --web N`), cached and uncached, on the CISI index that
`bench/search.py` builds (run it first; `make bench` does).

Uncached: Redis is flushed first and every CISI query is sent once (query embedding and
page computed); cached: the same queries three more times (pages from Redis). 8 clients
in both. The machine has 2 cores: the embedding model (uncached) and Python's per-request
work (cached) compete for them whatever the number of instances, so the factor measures
how much nginx + more processes help on this box, not on a bigger one.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx

from bench import report
from bench.common import bench_settings, web_tier
from bench.search import CISI, DB, PREFIX, REDIS_DB, timed_requests
from myaiserv.cache.client import redis_for_url
from myaiserv.datasets.trec import load_collection
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.evaluation.harness import tenant_key

CLIENTS = 8


async def run(instances: int, env: dict[str, str], key: str, redis_url: str) -> dict[str, float]:
    web = web_tier(env, Path(tempfile.mkdtemp(prefix="myaiserv-scale-")), instances, indexers=0)
    queries = [{"query": q.text} for q in load_collection(CISI).queries]
    redis = redis_for_url(redis_url)
    await asyncio.to_thread(web.start)
    try:
        url = f"http://127.0.0.1:{web.web.port}"
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
            await timed_requests(http, [{"query": "warm up"}] * (4 * instances), instances)
            await redis.flushdb()
            uncached = await timed_requests(http, queries, CLIENTS)
            cached = await timed_requests(http, queries * 3, CLIENTS)
    finally:
        await redis.aclose()
        await asyncio.to_thread(web.stop)
    return {"uncached_rps": uncached["rps"], "cached_rps": cached["rps"]}


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    engine = create_engine(settings)
    try:
        _, key = await tenant_key(create_sessionmaker(engine), "bench-search")
    finally:
        await engine.dispose()
    one = await run(1, env, key, settings.redis_url)
    three = await run(3, env, key, settings.redis_url)
    figures = {
        "clients": CLIENTS,
        "uncached_rps_1": round(one["uncached_rps"], 1),
        "uncached_rps_3": round(three["uncached_rps"], 1),
        "uncached_factor": round(three["uncached_rps"] / one["uncached_rps"], 2),
        "cached_rps_1": round(one["cached_rps"], 1),
        "cached_rps_3": round(three["cached_rps"], 1),
        "cached_factor": round(three["cached_rps"] / one["cached_rps"], 2),
    }
    how = __doc__.split("\n\n", 1)[1].strip() if __doc__ else ""
    report.save("scaling", {"search": figures}, {"how_search": how}, merge=True)
    for name, value in figures.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
