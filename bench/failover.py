"""Redis failover under load: one API instance and an indexer behind nginx reach a Redis
primary with two replicas through three Sentinels (a group of their own on free ports,
the local stack's timings: down after 1 s, failover timeout 2 s; the stack's own Redis is
left alone) while a mixed load runs (2 writers, 2 searchers, 1 chat client). The primary
is SIGKILLed FAILOVER_ROUNDS times (default 3), the killed node restarted as a replica
after each. Measured from the SIGKILL: until Sentinel names the promoted replica
(``redis_failover_switch_s``), and until the API counts a request on it again, i.e. its
rate-limit counters are written on the new primary (``redis_failover_s``; median and
max over the rounds). ``redis_failover_errors``: answers outside the designed ones (a 5xx
but 503, a 503 without Retry-After, a dropped connection) plus acknowledged writes
missing from PostgreSQL or the search at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench import report
from bench.common import bench_settings, prepare_database, web_tier
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.evaluation.harness import tenant_key
from tooling.failover import first_counted, kill_primary, sentinel_group, wait_for_promotion
from tooling.mixed import MixedLoad, reconcile

DB = "myaiserv_bench_load"
REDIS_DB = 6
PREFIX = "benchfailover"
ROUNDS = int(os.environ.get("FAILOVER_ROUNDS", "3"))


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    env.update(
        MYAISERV_RATE_LIMITS__PER_KEY_PER_MINUTE="1000000",  # counted, never reached
        MYAISERV_RATE_LIMITS__PER_TENANT_PER_MINUTE="1000000",
        MYAISERV_LLM__RATE_LIMIT_PER_MINUTE="0",
    )
    await prepare_database(settings, fresh=False)
    engine = create_engine(settings)
    try:
        _, key = await tenant_key(create_sessionmaker(engine), "bench-failover")
    finally:
        await engine.dispose()
    root = Path(tempfile.mkdtemp(prefix="myaiserv-failover-"))
    switch_s: list[float] = []
    counted_s: list[float] = []
    try:
        with sentinel_group(root / "redis") as group:
            env["REDIS_URL"] = group.config.url(REDIS_DB)
            web = web_tier(env, root / "web", 1)
            await asyncio.to_thread(web.start)
            try:
                url = f"http://127.0.0.1:{web.web.port}"
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
                    async with MixedLoad(http) as load:
                        for _ in range(ROUNDS):
                            await asyncio.sleep(3)
                            old = await asyncio.to_thread(kill_primary, group)
                            killed = time.monotonic()
                            await wait_for_promotion(group, old)
                            switch_s.append(time.monotonic() - killed)
                            counted_s.append(await first_counted(http, killed))
                            await asyncio.to_thread(group.start)  # back as a replica
                        await asyncio.sleep(3)
                    result = await reconcile(http, load.acked, within_s=300)
            finally:
                await asyncio.to_thread(web.stop)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    statuses = load.statuses()
    unexpected = sum(n for status, n in statuses.items() if status not in (200, 201, 503))
    no_retry_after = sum(1 for o in load.outcomes if o.status == 503 and not o.retry_after)
    figures = {
        "redis_failover_s": round(statistics.median(counted_s), 3),
        "redis_failover_max_s": round(max(counted_s), 3),
        "redis_failover_switch_s": round(statistics.median(switch_s), 3),
        "redis_failover_errors": unexpected + no_retry_after + result.lost,
        "redis_failover_detail": {
            "rounds": ROUNDS,
            "requests": len(load.outcomes),
            "answers": {str(k): v for k, v in sorted(statuses.items())},
            "503_without_retry_after": no_retry_after,
            "acknowledged_writes": result.acknowledged,
            "lost_writes": result.lost,
            "counted_s": [round(s, 3) for s in counted_s],
            "switch_s": [round(s, 3) for s in switch_s],
        },
    }
    report.save("reliability", figures, {"redis_failover_how": __doc__.strip()}, merge=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
