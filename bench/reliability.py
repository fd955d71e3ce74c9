"""Faults under load: one API instance and an indexer behind nginx take a mixed load
(2 writers, 2 searchers, 1 chat client) while Redis, Elasticsearch and PostgreSQL are
stopped in turn for RELIABILITY_OUTAGE_S seconds (default 10) and started again. A fault
is survived when, throughout, nothing answered 5xx but 503 (with Retry-After), traffic
recovered by itself, and at the end every acknowledged write (201) is in PostgreSQL and
found by a search in Elasticsearch. Stops the local stack's services: run it alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import httpx

from bench import report
from bench.common import bench_settings, local_stack_config, prepare_database, web_tier
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.evaluation.harness import tenant_key
from myaiserv.stack.manager import Stack
from tooling.mixed import MixedLoad, inject_fault, reconcile

DB = "myaiserv_bench_load"
REDIS_DB = 5
PREFIX = "benchload"
OUTAGE_S = float(os.environ.get("RELIABILITY_OUTAGE_S", "10"))
FAULTS = ("redis", "elasticsearch", "postgres")


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    env["MYAISERV_LLM__RATE_LIMIT_PER_MINUTE"] = "0"
    await prepare_database(settings, fresh=False)
    engine = create_engine(settings)
    try:
        _, key = await tenant_key(create_sessionmaker(engine), "bench-reliability")
    finally:
        await engine.dispose()
    stack = Stack(local_stack_config())
    web = web_tier(env, Path(tempfile.mkdtemp(prefix="myaiserv-faults-")), 1)
    acked: dict[str, str] = {}
    faults = []
    await asyncio.to_thread(web.start)
    try:
        url = f"http://127.0.0.1:{web.web.port}"
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            for dependency in FAULTS:
                async with MixedLoad(http) as load:
                    window = await inject_fault(
                        load,
                        lambda d=dependency: stack.stop(d),
                        lambda d=dependency: stack.start(d),
                        outage_s=OUTAGE_S,
                    )
                acked.update(load.acked)
                statuses = Counter(o.status for o in load.outcomes)
                outage = Counter(
                    o.status for o in load.outcomes[window.healthy_end : window.outage_end]
                )
                bad = sum(n for s, n in statuses.items() if s not in (200, 201, 503))
                no_retry_after = sum(
                    1 for o in load.outcomes if o.status == 503 and not o.retry_after
                )
                faults.append(
                    {
                        "dependency": dependency,
                        "outage_s": OUTAGE_S,
                        "requests": len(load.outcomes),
                        "during_outage": {str(k): v for k, v in sorted(outage.items())},
                        "acknowledged_writes": len(load.acked),
                        "unexpected_answers": bad,
                        "503_without_retry_after": no_retry_after,
                        "recovered": window.recovered,
                        "survived": window.recovered and bad == 0 and no_retry_after == 0,
                    }
                )
            result = await reconcile(http, acked, within_s=300)
    finally:
        await asyncio.to_thread(web.stop)
    figures = {
        "acknowledged_writes": result.acknowledged,
        "stored_writes": result.stored,
        "indexed_writes": result.indexed,
        "lost_writes": result.lost,
        "faults": [f"{f['dependency']} stopped {OUTAGE_S:g} s" for f in faults if f["survived"]],
        "faults_detail": faults,
    }
    # Merged: the section also holds the Redis failover's figures (bench/failover.py).
    report.save("reliability", figures, {"how": __doc__.strip() if __doc__ else ""}, merge=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
