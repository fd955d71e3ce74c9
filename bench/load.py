"""Load run: locust (headless, loopback only, bounded in time) against 1 and then 3 API
instances behind nginx with one indexer, a read/write mix (search 6 : write 2 : read 1 :
chat 1) for LOAD_DURATION_S seconds each (default 180) with LOAD_USERS users (default 16),
then, once the indexer has worked off the backlog the load left (timed), a
reconciliation: every acknowledged write (201) must be readable from PostgreSQL and found
by a search for its unique token in Elasticsearch. Redis is flushed before each run, so
both start with cold caches.

The tenant `bench-load` starts with 300 CISI documents (stored once; later runs are
deduplicated). Request rate limits are off (a measurement, not traffic to police); the
chat limit stays on, so 429s are possible and counted apart from errors.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench import report
from bench.common import ROOT, bench_settings, prepare_database, web_tier
from bench.search import CISI
from myaiserv.cache.client import redis_for_url
from myaiserv.datasets.trec import load_collection
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import OutboxEvent
from myaiserv.evaluation.harness import tenant_key
from tooling.mixed import reconcile

DB = "myaiserv_bench_load"
REDIS_DB = 5
PREFIX = "benchload"
DURATION_S = int(os.environ.get("LOAD_DURATION_S", "180"))
USERS = int(os.environ.get("LOAD_USERS", "16"))


def _aggregate(csv_path: Path) -> dict[str, float]:
    with csv_path.open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    agg = rows["Aggregated"]
    return {
        "requests": int(agg["Request Count"]),
        "failures": int(agg["Failure Count"]),
        "rps": float(agg["Requests/s"]),
        "p50_ms": float(agg["50%"]),
        "p99_ms": float(agg["99%"]),
        "per_endpoint": {
            name: {
                "requests": int(r["Request Count"]),
                "p50_ms": float(r["50%"]),
                "p99_ms": float(r["99%"]),
            }
            for name, r in rows.items()
            if name != "Aggregated"
        },
    }


async def drained(sessions: async_sessionmaker[AsyncSession], limit_s: float = 1800) -> float:
    """Seconds until the indexer has written the whole backlog (the outbox is empty)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        async with sessions() as session:
            if not await session.scalar(select(func.count(OutboxEvent.id))):
                break
        await asyncio.sleep(1.0)
    return round(time.monotonic() - started, 1)


async def run(
    instances: int,
    env: dict[str, str],
    key: str,
    work: Path,
    sessions: async_sessionmaker[AsyncSession],
    redis_url: str,
) -> dict[str, object]:
    web = web_tier(env, work / f"web-{instances}", instances)
    ack = work / f"acked-{instances}.json"
    data = work / "load-data.json"
    write_load_data(data)
    locust_env = {**os.environ, "LOAD_KEY": key, "LOAD_ACK": str(ack), "LOAD_DATA": str(data)}
    redis = redis_for_url(redis_url)
    try:
        await redis.flushdb()  # every run starts with cold caches
    finally:
        await redis.aclose()
    await asyncio.to_thread(web.start)
    url = f"http://127.0.0.1:{web.web.port}"
    try:
        cmd = locust_command("ApiUser", url, USERS, DURATION_S, work / f"load-{instances}")
        await asyncio.to_thread(
            subprocess.run, cmd, env=locust_env, check=False, timeout=DURATION_S + 300
        )
        stats = _aggregate(work / f"load-{instances}_stats.csv")
        saved = json.loads(ack.read_text())
        drain_s = await drained(sessions)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as http:
            result = await reconcile(http, saved["acked"], within_s=60)
    finally:
        await asyncio.to_thread(web.stop)
    statuses = {int(k): v for k, v in saved["statuses"].items()}
    return {
        "instances": instances,
        "users": USERS,
        "duration_s": DURATION_S,
        **stats,
        "statuses": statuses,
        "rate_limited_429": statuses.get(429, 0),
        "errors": sum(v for s, v in statuses.items() if s >= 400 and s != 429),
        "acknowledged_writes": result.acknowledged,
        "stored_writes": result.stored,
        "indexed_writes": result.indexed,
        "lost_writes": result.lost,
        "backlog_indexed_after_load_s": drain_s,
    }


def write_load_data(path: Path) -> None:
    """The locust users' queries and texts (CISI's), as $LOAD_DATA."""
    collection = load_collection(CISI)
    path.write_text(
        json.dumps(
            {
                "queries": [q.text[:300] for q in collection.queries],
                "texts": [d.text[:1500] for d in collection.documents[:200]],
            }
        )
    )


def locust_command(
    user: str, url: str, users: int, duration_s: float, csv: Path, *, stop_timeout_s: int = 15
) -> list[str]:
    """Headless locust: ``users`` of ``bench/locustfile.py``'s class ``user`` for
    ``duration_s``, its statistics into ``csv``_*.csv."""
    return [
        sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"),
        "--headless", "-u", str(users), "-r", str(users), "-t", f"{int(duration_s)}s",
        "--host", url, "--csv", str(csv), "--only-summary",
        "--stop-timeout", str(stop_timeout_s), "--loglevel", "WARNING", user,
    ]  # fmt: skip


async def seed_documents(http: httpx.AsyncClient, count: int = 300) -> list[str]:
    """Store the first ``count`` CISI documents through the API; their ids (a document
    stored before is not stored twice: its id comes back)."""
    docs = load_collection(CISI).documents[:count]
    ids = []
    for i in range(0, len(docs), 100):
        batch = [
            {"title": d.title or d.id, "text": d.text, "source": f"cisi:{d.id}"}
            for d in docs[i : i + 100]
        ]
        resp = await http.post("/v1/documents/batch", json={"documents": batch})
        resp.raise_for_status()
        ids += [item["id"] for item in resp.json()["items"]]
    return ids


async def seed(env: dict[str, str], key: str, work: Path) -> None:
    """The tenant's starting corpus, through the API (stored once)."""
    web = web_tier(env, work / "seed", 1)
    await asyncio.to_thread(web.start)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{web.web.port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=300,
        ) as http:
            await seed_documents(http)
            for _ in range(600):  # the indexer drains the outbox
                found = await http.post("/v1/search", json={"query": "library", "size": 1})
                if found.json()["total"]["value"] >= 1:
                    break
                await asyncio.sleep(1)
    finally:
        await asyncio.to_thread(web.stop)


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    env["MYAISERV_LLM__RATE_LIMIT_PER_MINUTE"] = "600"
    await prepare_database(settings, fresh=False)
    engine = create_engine(settings)
    try:
        _, key = await tenant_key(create_sessionmaker(engine), "bench-load")
    finally:
        await engine.dispose()
    work = Path(tempfile.mkdtemp(prefix="myaiserv-load-"))
    await seed(env, key, work)
    engine = create_engine(settings)
    try:
        sessions = create_sessionmaker(engine)
        one = await run(1, env, key, work, sessions, settings.redis_url)
        three = await run(3, env, key, work, sessions, settings.redis_url)
    finally:
        await engine.dispose()
    figures = {
        # The headline figures: 3 instances (the deployment shape).
        "rps": round(float(three["rps"]), 1),
        "p50_ms": three["p50_ms"],
        "p99_ms": three["p99_ms"],
        "errors": three["errors"],
        "rate_limited_429": three["rate_limited_429"],
        "duration_s": DURATION_S,
        "users": USERS,
        "runs": {"instances_1": one, "instances_3": three},
    }
    report.save("load", figures, {"how": __doc__.strip() if __doc__ else ""})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
