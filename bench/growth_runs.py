"""Runs search with many recorded runs (`bench.growth`, stage ``runs``).

On a one-node private stack of its own: SCALE_RUNS runs (default 100,000) recorded
through RunService by bench/console.py's generator (four models, 5% errors, started over
60 days, inputs and outputs CISI abstracts and queries; each run's pair one of
SCALE_RUN_TEXTS pairs, so the indexer embeds that many texts and its cache answers the
rest), each run's ``created_at`` then set to its start (as if recorded over those 60 days,
so the dashboards' days have runs), and indexed by one `myaiserv indexer run`. Then one
API process answers, one client, over SCALE_ROUNDS rounds (server time, `Server-Timing`):

- text search: `POST /v1/runs/search` with one word (40 words from the CISI queries),
  sorted by relevance, 20 hits;
- filters: no text, one model and one status (rotating), a latency range and the last 30
  days, newest first;
- the dashboard: the console overview's aggregations (totals, by day, by model) over the
  last 7, 30 and 90 days, no hits.

p50 and p99 pool the rounds; the spread is the lowest and highest per-round p50.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from bench.common import bench_settings, prepare_database, private_stack_down, private_stack_up
from bench.console import CISI, MODELS, query_words, server_ms, store_runs, wait_indexed
from bench.growth_search import summarise
from myaiserv.datasets.trec import load_collection
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import Run
from myaiserv.evaluation.harness import free_port, local_api, spawn, stop, tenant_key

DB = "myaiserv_bench_scale_runs"
PREFIX = "benchscaleruns"
WORDS = 40


def bodies(words: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The requests of each kind (text, filters, dashboard)."""
    now = datetime.now(UTC)
    filters = [
        {
            "filters": {
                "model": [MODELS[i % len(MODELS)]],
                "status": ["error" if i % 2 else "ok"],
                "latency_ms": {"gte": 300 + 50 * (i % 10), "lte": 3000},
                "created_at": {"gte": (now - timedelta(days=30)).isoformat()},
            },
            "sort": "time",
        }
        for i in range(len(words))
    ]
    dashboard = [
        {
            "size": 0,
            "filters": {"created_at": {"gte": (now - timedelta(days=days)).isoformat()}},
            "aggregations": ["totals", "by_day", "by_model"],
        }
        for days in (7, 30, 90)
    ]
    return {
        "text": [{"query": word, "size": 20} for word in words],
        "filters": filters,
        "dashboard": dashboard * max(1, len(words) // 3),
    }


async def runs_stage(
    work: Path, *, runs: int, distinct: int, rounds: int, es_heap: str
) -> dict[str, Any]:
    folder = work / "stacks" / "runs"
    shutil.rmtree(folder, ignore_errors=True)
    await asyncio.to_thread(private_stack_up, folder, es_heap=es_heap)
    os.environ["MYAISERV_STACK_DIR"] = str(folder)  # bench_settings reads it
    settings, env = bench_settings(DB, 1, PREFIX)
    engine = None
    try:
        await prepare_database(settings, fresh=True)
        init = [sys.executable, "-m", "myaiserv", "index", "init"]
        await asyncio.to_thread(subprocess.run, init, env=env, check=True)
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        tenant_id, key = await tenant_key(sessions, "runs", key_name="scale")
        collection = load_collection(CISI)
        texts = [doc.text for doc in collection.documents if doc.text.strip()]
        texts += [query.text for query in collection.queries if query.text.strip()]
        started = time.monotonic()
        await store_runs(sessions, tenant_id, texts, count=runs, distinct=distinct)
        stored_s = time.monotonic() - started
        async with sessions() as session, session.begin():
            await session.execute(
                update(Run).where(Run.tenant_id == tenant_id).values(created_at=Run.started_at)
            )
        indexer = spawn(
            ["indexer", "run"], {**env, "MYAISERV_INDEXING__METRICS_PORT": str(free_port())}
        )
        try:
            indexed_s = await wait_indexed(sessions, "runs")
        finally:
            stop([indexer])
        words = query_words(collection, WORDS)
        kinds = bodies(words)
        times: dict[str, list[list[float]]] = {kind: [] for kind in kinds}
        async with (
            local_api(env, indexer=False) as (url, _),
            httpx.AsyncClient(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as http,
        ):
            for requests in kinds.values():  # warm-up, not timed
                for body in requests[:3]:
                    server_ms(await http.post("/v1/runs/search", json=body))
            for _ in range(rounds):
                for kind, requests in kinds.items():
                    times[kind].append(
                        [server_ms(await http.post("/v1/runs/search", json=b)) for b in requests]
                    )
            check = await http.post("/v1/runs/search", json={"size": 0, "aggregations": ["totals"]})
            total = check.json()["aggregations"]["totals"]["count"]
    finally:
        if engine is not None:
            await engine.dispose()
        await asyncio.to_thread(private_stack_down, folder)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "runs": runs,
        "runs_indexed": total,
        "distinct_texts": distinct,
        "store_s": round(stored_s, 1),
        "index_s": round(indexed_s, 1),
        "rounds": rounds,
        "requests_per_round": {kind: len(r) for kind, r in kinds.items()},
        **summarise(times),
    }
