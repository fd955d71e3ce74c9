"""Soak: SOAK_SECONDS (default 1800) of mixed load against 3 API instances behind nginx
and 2 indexers, on a private stack (`myaiserv stack up --dir` in a folder of its own:
Elasticsearch, PostgreSQL and Redis on free ports, taken down and removed at the end; the
shared stack is never touched). Locust's `SoakUser` (bench/locustfile.py; SOAK_USERS
users, default 8, a mean pause of SOAK_WAIT_S, 0.5 s, between tasks) searches, writes,
updates and deletes documents (each user keeps at most SOAK_DOCS_PER_USER, 40, of its
own, so the corpus stays bounded), reads them back, asks the RAG chat (the offline
extractive provider; each answer records a run) and searches the runs (text, filters,
the dashboard's aggregations), after a seed of 300 CISI documents is indexed.

Every SOAK_SAMPLE_S (default 30 s) from the start of the load: the resident memory of
every process (each API instance, each indexer, nginx's master and worker, Elasticsearch;
Redis; PostgreSQL's postmaster and backends in total, as proportional set size, since
their RSS would count the shared buffers once per backend), Elasticsearch's heap (used,
and after its last collection, from the node's GC log), its open search contexts and
scrolls (the most seen in the window, probed every 5 s), Redis's used memory, the
outbox's backlog and the age of its oldest row, and each request type's p50 and p99 over
the window (from the users' request log).

Growth: for each series, the median of its last quarter against the median of its
second quarter (the first is warm-up), with the slope of a line fitted to its second
half; a series grows when it rose by more than its tolerance (memory: 10% and 10 MB;
Elasticsearch heap: 10% and 25 MB; Redis: 10% and 5 MB; open contexts: 5; outbox backlog:
50 rows; its age: 5 s; p50 and p99: 50% and 50 ms) and the fitted line rises.
`max_rss_growth_pct` is the largest process-memory growth, `app_max_rss_growth_pct` the
largest among MyAIServ's own processes (API instances, indexers). Redis keeps each new chunk's
embedding for a week (MYAISERV_EMBEDDING__CACHE_TTL_S) under its maxmemory, evicting the
least recently used: under writes of new text it grows until that bound, by design (the
bound is given beside it, and what Redis holds at the end by kind of key, with those
that never expire). Errors: every answer but a 2xx, or no answer, counted by
status; 429s (the chat's per-tenant rate limit, as configured) are designed answers,
counted apart.

Reconciliation, once the backlog is drained: every document the users got a 2xx for
must be in Elasticsearch (every chunk) at the latest version acknowledged, and in
PostgreSQL at it; every acknowledged delete gone from both; every run a chat answer named
in Elasticsearch; and nothing extra: no chunk of a document neither seeded nor
acknowledged, no chunk at a version PostgreSQL no longer has, no run PostgreSQL lacks.
`lost_writes` counts acknowledged writes missing (or older) in the index or the database;
`extra_in_index` what the index holds beyond them.

It stays one module past 400 lines: the run (stack, tier, load, sampling) and the
reconciliation read the same state, and what is sampled and judged is already apart in
``soak_probes``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from bench import report
from bench.common import bench_settings, prepare_database, web_tier
from bench.load import drained, locust_command, seed_documents, write_load_data
from bench.search_sustained import percentile
from bench.soak_probes import (
    Sampler,
    Tolerance,
    Watched,
    answers,
    growth,
    read_log,
    redis_keys,
    windows,
)
from myaiserv.cache.client import redis_for_url
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import Document, Run
from myaiserv.evaluation.harness import free_port, tenant_key
from myaiserv.search.client import create_es_client
from myaiserv.stack.elasticsearch import ElasticsearchService
from myaiserv.stack.manager import Stack
from myaiserv.stack.postgres import PostgresService
from myaiserv.stack.process import read_pid
from myaiserv.stack.redis import RedisService

DB = "myaiserv_soak"
REDIS_DB = 1
PREFIX = "soak"
DURATION_S = float(os.environ.get("SOAK_SECONDS", "1800"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "30"))
USERS = int(os.environ.get("SOAK_USERS", "8"))
INSTANCES, INDEXERS = 3, 2
STOP_TIMEOUT_S = 60  # locust lets each user finish its task: no write left unanswered

MEMORY = Tolerance(0.10, 10.0)
TOLERANCES = {
    "es_heap_after_gc_mb": Tolerance(0.10, 25.0),
    "es_heap_used_mb": Tolerance(0.10, 25.0),  # only where the node keeps no GC log
    "redis_used_mb": Tolerance(0.10, 5.0),
    "es_open_contexts": Tolerance(0.0, 5.0),
    "es_scrolls": Tolerance(0.0, 5.0),
    "outbox_backlog": Tolerance(0.0, 50.0),
    "outbox_oldest_s": Tolerance(0.0, 5.0),
}
LATENCY = Tolerance(0.50, 50.0)


# -- the private stack -------------------------------------------------------------------


def stack_up(folder: Path) -> None:
    """Elasticsearch, PostgreSQL and Redis in ``folder``, each on a free port."""
    ports = {
        "--es-http-port": free_port(),
        "--es-transport-port": free_port(),
        "--pg-port": free_port(),
        "--redis-port": free_port(),
    }
    cmd = [sys.executable, "-m", "myaiserv", "stack", "up", "--dir", str(folder)]
    cmd += ["--services", "elasticsearch,postgres,redis", "--env-file", "-"]
    cmd += [str(a) for item in ports.items() for a in item]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"stack up failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def stack_down(folder: Path) -> None:
    cmd = [sys.executable, "-m", "myaiserv", "stack", "down", "--dir", str(folder)]
    subprocess.run(cmd, capture_output=True, check=False, timeout=300)


def stack_processes(folder: Path) -> tuple[list[Watched], Path]:
    """The stack's servers, and its Elasticsearch node's GC log."""
    stack = Stack.from_dir(folder)
    es = stack.services["elasticsearch"]
    pg = stack.services["postgres"]
    redis = stack.services["redis"]
    assert isinstance(es, ElasticsearchService)
    assert isinstance(pg, PostgresService)
    assert isinstance(redis, RedisService)
    pids = {
        "elasticsearch": read_pid(es.pidfile("node-1")),
        "postgres": read_pid(pg.data / "postmaster.pid"),
        "redis": read_pid(redis.pidfile),
    }
    watched = [
        Watched(name, pid, "pss" if name == "postgres" else "rss")
        for name, pid in pids.items()
        if pid
    ]
    return watched, es.node_dir("node-1") / "logs" / "gc.log"


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


# -- sampling ----------------------------------------------------------------------------


async def run_load(sampler: Sampler, locust: subprocess.Popen[bytes]) -> float:
    """Sample until locust has ended; the load's duration in seconds."""
    probe = asyncio.create_task(sampler.probe())
    try:
        await sampler.sample()
        next_at = sampler.started + SAMPLE_S
        while locust.poll() is None:
            await asyncio.sleep(max(0.0, min(1.0, next_at - time.time())))
            if time.time() >= next_at and locust.poll() is None:
                await sampler.sample()
                next_at += SAMPLE_S
        ended = time.time() - sampler.started
    finally:
        probe.cancel()
    return ended


# -- reconciliation ----------------------------------------------------------------------


async def index_versions(es: Any, alias: str, id_field: str, tenant: UUID) -> dict[str, set[int]]:
    """Per entity id, the versions of its entries in ``alias`` (a document: its chunks)."""
    await es.indices.refresh(index=alias)
    found: dict[str, set[int]] = {}
    after = None
    sort_field = "chunk_id" if id_field == "document_id" else id_field
    while True:
        body: dict[str, Any] = {
            "query": {"term": {"tenant_id": str(tenant)}},
            "_source": [id_field, "version"],
            "size": 5000,
            "sort": [{sort_field: "asc"}],
        }
        if after:
            body["search_after"] = after
        hits = (await es.search(index=alias, **body))["hits"]["hits"]
        for hit in hits:
            found.setdefault(hit["_source"][id_field], set()).add(int(hit["_source"]["version"]))
        if len(hits) < 5000:
            return found
        after = hits[-1]["sort"]


def reconcile(
    acked: dict[str, int],
    deleted: set[str],
    seeded: set[str],
    index_docs: dict[str, set[int]],
    database_docs: dict[str, int],
    acked_runs: set[str],
    index_runs: set[str],
    database_runs: set[str],
) -> dict[str, Any]:
    """The acknowledged writes (``acked``: document id -> the latest version a 2xx
    answer gave; the seed's documents at version 1) against what the index and the
    database hold."""
    live = dict.fromkeys(seeded, 1) | {d: v for d, v in acked.items() if d not in deleted}
    lost = sorted(
        d for d, v in live.items() if max(index_docs.get(d, {0})) < v or database_docs.get(d, 0) < v
    )
    expected = set(live)
    extra = sorted(set(index_docs) - expected - deleted)
    resurrected = sorted(d for d in deleted if d in index_docs or d in database_docs)
    stale = sorted(
        d
        for d, versions in index_docs.items()
        if d in expected and versions != {database_docs.get(d)}
    )
    lost_runs = sorted(acked_runs - index_runs)
    extra_runs = sorted(index_runs - database_runs)
    return {
        "acknowledged_documents": len(acked),
        "acknowledged_deletes": len(deleted),
        "acknowledged_runs": len(acked_runs),
        "seeded_documents": len(seeded),
        "documents_in_index": len(index_docs),
        "runs_in_index": len(index_runs),
        "lost_documents": lost,
        "lost_runs": lost_runs,
        "extra_documents": extra,
        "deleted_still_present": resurrected,
        "stale_chunks_documents": stale,
        "extra_runs": extra_runs,
        # Stored, but never acknowledged (a request whose answer did not come): not lost.
        "unacknowledged_stored": len(set(database_docs) - expected),
        "lost_writes": len(lost) + len(lost_runs),
        "extra_in_index": len(extra) + len(resurrected) + len(stale) + len(extra_runs),
    }


async def database_state(sessions: Any, tenant: UUID) -> tuple[dict[str, int], set[str]]:
    async with sessions() as session:
        docs = await session.execute(
            select(Document.id, Document.version).where(Document.tenant_id == tenant)
        )
        runs = await session.scalars(select(Run.id).where(Run.tenant_id == tenant))
        return {str(i): int(v) for i, v in docs.all()}, {str(i) for i in runs.all()}


# -- figures -----------------------------------------------------------------------------


def judged(series: dict[str, list[list[float]]], duration_s: float) -> dict[str, Any]:
    out = {}
    for name, points in sorted(series.items()):
        if name.startswith("memory_mb."):
            tolerance = MEMORY
        elif name.startswith(("p99_ms.", "p50_ms.")):
            tolerance = LATENCY
        else:
            tolerance = TOLERANCES[name]
        out[name] = {"points": points, **growth(points, duration_s, tolerance)}
    return out


def figures(
    series: dict[str, Any],
    requests: list[Any],
    duration_s: float,
    drain_s: float,
    checked: dict[str, Any],
    redis_maxmemory_mb: float,
    redis_held: dict[str, Any],
) -> dict[str, Any]:
    by_name = answers(requests)
    statuses: dict[str, int] = {}
    for counts in by_name.values():
        for status, n in counts.items():
            statuses[status] = statuses.get(status, 0) + n
    errors = {s: n for s, n in statuses.items() if not 200 <= int(s) < 300 and s != "429"}
    memory = {k: v for k, v in series.items() if k.startswith("memory_mb.")}
    worst = max(memory, key=lambda k: memory[k]["growth_pct"] or 0.0, default=None)
    own = [k for k in memory if k.startswith(("memory_mb.web-", "memory_mb.indexer-"))]
    app = max(own, key=lambda k: memory[k]["growth_pct"] or 0.0, default=None)
    latency = {}
    for name in by_name:
        ms = [r.ms for r in requests if r.name == name]
        latency[name] = {
            "requests": len(ms),
            "p50_ms": round(percentile(ms, 0.5), 1),
            "p99_ms": round(percentile(ms, 0.99), 1),
        }
    return {
        "duration_s": round(duration_s, 1),
        "users": USERS,
        "instances": INSTANCES,
        "indexers": INDEXERS,
        "sample_s": SAMPLE_S,
        "requests": len(requests),
        "requests_per_s": round(len(requests) / duration_s, 1),
        "answers": by_name,
        "statuses": dict(sorted(statuses.items())),
        "errors": sum(errors.values()),
        "errors_by_status": errors,
        "rate_limited_429": statuses.get("429", 0),
        "latency": latency,
        "max_rss_growth_pct": memory[worst]["growth_pct"] if worst else None,
        "max_rss_growth_process": worst.split(".", 1)[1] if worst else None,
        "app_max_rss_growth_pct": memory[app]["growth_pct"] if app else None,
        "app_max_rss_growth_process": app.split(".", 1)[1] if app else None,
        "es_heap_growth_pct": (
            series.get("es_heap_after_gc_mb") or series.get("es_heap_used_mb") or {}
        ).get("growth_pct"),
        "redis_memory_growth_pct": series.get("redis_used_mb", {}).get("growth_pct"),
        "redis_maxmemory_mb": redis_maxmemory_mb,
        "redis_keys": redis_held,
        "open_contexts_max": series.get("es_open_contexts", {}).get("max"),
        "outbox_backlog_max": series.get("outbox_backlog", {}).get("max"),
        "outbox_oldest_max_s": series.get("outbox_oldest_s", {}).get("max"),
        "backlog_drained_after_s": drain_s,
        "growing": [name for name, s in series.items() if s["grows"]],
        "lost_writes": checked["lost_writes"],
        "extra_in_index": checked["extra_in_index"],
        "reconciliation": checked,
        "series": series,
    }


async def soak(work: Path, folder: Path) -> dict[str, Any]:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    await prepare_database(settings, fresh=True)
    engine = create_engine(settings)
    es = create_es_client(settings)
    redis = redis_for_url(settings.redis_url)
    web = web_tier(env, work, INSTANCES, indexers=INDEXERS)
    try:
        sessions = create_sessionmaker(engine)
        tenant, key = await tenant_key(sessions, "bench-soak")
        await asyncio.to_thread(web.start)
        url = f"http://127.0.0.1:{web.web.port}"
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as http:
            seeded = set(await seed_documents(http))
        await drained(sessions)
        data, ack, log = work / "load-data.json", work / "acked.json", work / "requests.log"
        write_load_data(data)
        locust_env = {
            **os.environ,
            "LOAD_KEY": key,
            "LOAD_ACK": str(ack),
            "LOAD_DATA": str(data),
            "LOAD_LOG": str(log),
        }
        servers, gc_log = stack_processes(folder)
        watched = [Watched(n, p) for n, p in web.pids().items()] + servers
        sampler = Sampler(watched, es, gc_log, redis, sessions, probe_s=5.0)
        cmd = locust_command(
            "SoakUser", url, USERS, DURATION_S, work / "soak", stop_timeout_s=STOP_TIMEOUT_S
        )
        locust = start(cmd, locust_env, work / "locust.log")
        try:
            duration = await run_load(sampler, locust)
        finally:
            if locust.poll() is None:
                locust.terminate()
            locust.wait(timeout=120)
        drain_s = await drained(sessions)
        saved = json.loads(ack.read_text())
        requests = read_log(log.read_text().splitlines())
        for name, points in windows(requests, sampler.started, SAMPLE_S).items():
            # Whole windows of the load only: not the users' last tasks as they stop.
            for t, _, p50, p99 in (p for p in points if p[0] <= duration + 1):
                sampler.add(f"p50_ms.{name}", t, p50)
                sampler.add(f"p99_ms.{name}", t, p99)
        database_docs, database_runs = await database_state(sessions, tenant)
        checked = reconcile(
            saved["versions"],
            set(saved["deleted"]),
            seeded,
            await index_versions(es, f"{PREFIX}-documents", "document_id", tenant),
            database_docs,
            set(saved["runs"]),
            set(await index_versions(es, f"{PREFIX}-runs", "run_id", tenant)),
            database_runs,
        )
        held = await redis_keys(redis)
    finally:
        await asyncio.to_thread(web.stop)
        await es.close()
        await redis.aclose()
        await engine.dispose()
    series = judged(sampler.series, duration)
    return figures(series, requests, duration, drain_s, checked, sampler.redis_maxmemory_mb, held)


def workdir() -> Path:
    work = Path(tempfile.mkdtemp(prefix="myaiserv-soak-"))
    work.chmod(0o755)  # the stack's servers run as their own user when we are root
    return work


async def main() -> None:
    work = workdir()
    folder = work / "stack"
    try:
        await asyncio.to_thread(stack_up, folder)
        os.environ["MYAISERV_STACK_DIR"] = str(folder)  # bench.common: its servers
        result = await soak(work, folder)
    finally:
        await asyncio.to_thread(stack_down, folder)
        shutil.rmtree(work, ignore_errors=True)
    report.save("soak", result, {"how": __doc__.strip() if __doc__ else ""})
    shown = {k: v for k, v in result.items() if k not in ("series", "answers", "reconciliation")}
    print(json.dumps(shown, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
