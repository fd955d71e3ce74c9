"""Hung dependencies under load: one API instance and an indexer behind nginx take a mixed
load (2 writers, 2 searchers, 1 chat client) while Redis, Elasticsearch and PostgreSQL in
turn are hung for HANG_S seconds (default 30): SIGSTOP of every process of the server (it
accepts connections, answers nothing), then SIGCONT. The app runs with its default
budgets. Per dependency: request times of the answers given during the hang (p50, p99),
the longest request of the run, the answers by status during the hang, whether the
circuit breaker opened (its gauge, scraped every 0.5 s), and the time from SIGCONT until
the last 10 requests all succeeded. Then every acknowledged write is looked for in
PostgreSQL and by a search. One run per dependency on a shared machine: the figures are
single samples, not distributions over runs. Hangs the local stack's services: run it
alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.common import bench_settings, local_stack_config, prepare_database, web_tier
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.evaluation.harness import tenant_key
from myaiserv.stack.manager import Stack
from tooling.mixed import MixedLoad, inject_fault, reconcile, watch_breaker

DB = "myaiserv_bench_load"
REDIS_DB = 5
PREFIX = "benchload"
HANG_S = float(os.environ.get("HANG_S", "30"))
DEPENDENCIES = ("redis", "elasticsearch", "postgres")


async def hang(
    http: httpx.AsyncClient, stack: Stack, dependency: str
) -> tuple[dict[str, Any], MixedLoad]:
    seen: list[int] = []
    watcher = asyncio.create_task(watch_breaker(http, dependency, seen))
    try:
        async with MixedLoad(http) as load:
            window = await inject_fault(
                load,
                lambda: stack.pause(dependency),
                lambda: stack.resume(dependency),
                outage_s=HANG_S,
            )
    finally:
        watcher.cancel()
    during = load.outcomes[window.healthy_end : window.outage_end]
    cuts = statistics.quantiles([o.seconds * 1000 for o in during], n=100, method="inclusive")
    statuses = Counter(o.status for o in load.outcomes)
    figures = {
        "hang_s": HANG_S,
        "p50_ms": round(cuts[49], 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(max(o.seconds for o in load.outcomes) * 1000, 1),
        "recovered_s": round(window.recovered_s, 1),
        "recovered": window.recovered,
        "answers_during_hang": {
            str(k): v for k, v in sorted(Counter(o.status for o in during).items())
        },
        "requests": len(load.outcomes),
        "unexpected_answers": sum(n for s, n in statuses.items() if s not in (200, 201, 503)),
        "503_without_retry_after": sum(
            1 for o in load.outcomes if o.status == 503 and not o.retry_after
        ),
        "breaker_opened": max(seen, default=0) == 2,
    }
    return figures, load


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    env["MYAISERV_LLM__RATE_LIMIT_PER_MINUTE"] = "0"
    await prepare_database(settings, fresh=False)
    engine = create_engine(settings)
    try:
        _, key = await tenant_key(create_sessionmaker(engine), "bench-hangs")
    finally:
        await engine.dispose()
    stack = Stack(local_stack_config())
    web = web_tier(env, Path(tempfile.mkdtemp(prefix="myaiserv-hangs-")), 1)
    acked: dict[str, str] = {}
    hangs: dict[str, Any] = {}
    await asyncio.to_thread(web.start)
    try:
        url = f"http://127.0.0.1:{web.web.port}"
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
            for dependency in DEPENDENCIES:
                hangs[dependency], load = await hang(http, stack, dependency)
                acked.update(load.acked)
            result = await reconcile(http, acked, within_s=300)
    finally:
        await asyncio.to_thread(web.stop)
    hangs["acknowledged_writes"] = result.acknowledged
    hangs["lost_writes"] = result.lost
    how = __doc__.strip() if __doc__ else ""
    report.save("reliability", {"hang": hangs}, {"hang": {"how": how}}, merge=True)
    print(json.dumps(hangs, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
