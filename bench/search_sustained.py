"""Sustained search: open search contexts under traffic.

One API instance and one indexer behind nginx, on the stack's Elasticsearch node (a
private stack, MYAISERV_STACK_DIR, so that nobody else's searches count), over a database,
Redis database and index prefix of the benchmark's own. After a seed corpus is indexed,
SUSTAINED_CLIENTS (default 8) closed-loop clients send distinct uncached searches
(`Cache-Control: no-cache`, every query text different; hybrid, bm25 and vector in turn)
for SUSTAINED_DURATION_S seconds (default 300), each sending the next as soon as the last
answered: the highest rate this machine sustains, on a 2-core machine shared with other
work, so the rate is what the machine gave at that moment, not a property of the API.
One search in twenty pages on with its cursor for up to 3 pages and leaves (vector,
hybrid, bm25: within the window kept in Redis), one in twenty is a bm25 search of one
tag's 10 seed documents paged to its end past its window of 4 (within a point in time,
opened by the first page past the window, closed by the last), and a writer stores a
document every 0.2 s throughout, which the indexer makes searchable (refreshes, cache
generations). Every second the node's open search contexts (`GET
_nodes/stats/indices/search`: open_contexts) are sampled (the curve keeps the most of each
5 s). An error is any answer but 200 (searches) or 201 (writes), or no answer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.common import bench_settings, prepare_database, web_tier
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.evaluation.harness import tenant_key
from myaiserv.search.client import create_es_client

DB = "myaiserv_bench_sustained"
REDIS_DB = 7
PREFIX = "benchsustained"
DURATION_S = float(os.environ.get("SUSTAINED_DURATION_S", "300"))
CLIENTS = int(os.environ.get("SUSTAINED_CLIENTS", "8"))
WORDS = [
    *("harbour", "ledger", "tide", "cargo", "ship", "crane", "pier", "storm", "rope"),
    *("anchor", "sail", "chart", "compass", "keel", "hull", "mast", "deck", "galley"),
    *("lantern", "buoy", "reef", "current", "voyage", "island"),
]
SEED_DOCUMENTS = 300
GROUPS = 30  # seed documents are tagged in groups of 10


def curve(samples: list[tuple[float, int]], every_s: float = 5) -> list[list[float]]:
    """The samples as one point per ``every_s`` seconds: its start and the most contexts
    seen in it (so the curve keeps the maximum)."""
    buckets: dict[float, int] = {}
    for t, n in samples:
        start = every_s * int(t // every_s)
        buckets[start] = max(n, buckets.get(start, 0))
    return [[t, n] for t, n in sorted(buckets.items())]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] if ordered else 0.0


class Run:
    """The traffic and what it met."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.pages_followed = 0
        self.writes = 0
        # Word triples, round again when used up (a fast run outlasts them); every query
        # also carries its client and sequence number, so none repeats.
        self.queries = itertools.cycle([" ".join(c) for c in itertools.permutations(WORDS, 3)])
        self.stop = asyncio.Event()

    async def _post(self, kind: str, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            resp = await self.http.post(path, json=body, headers={"Cache-Control": "no-cache"})
        except httpx.HTTPError:
            self.statuses[f"{kind}:no answer"] += 1
            return None
        self.statuses[f"{kind}:{resp.status_code}"] += 1
        if kind == "search":
            self.latencies.append(time.perf_counter() - started)
        return resp.json() if resp.status_code in (200, 201) else None

    async def searcher(self, number: int) -> None:
        modes = itertools.cycle(["hybrid", "bm25", "vector"])
        for n in itertools.count():
            if self.stop.is_set():
                return
            body: dict[str, Any] = {"query": f"{next(self.queries)} {number}.{n}"}
            body["mode"] = next(modes)
            deep = n % 20 == 19  # bm25 past its window, to the last page (10 hits in all)
            if deep:
                body |= {"mode": "bm25", "window": 4, "size": 3}
                body["filters"] = {"tags": [f"group{(number + n) % GROUPS}"]}
            page = await self._post("search", "/v1/search", body)
            follow = 10 if deep else 3 if n % 10 == 9 else 0
            # A client pages on even as the run stops: a bm25 client past its window ends
            # its point in time with its last page.
            while follow and page and page.get("next_cursor"):
                page = await self._post(
                    "search", "/v1/search", {**body, "cursor": page["next_cursor"]}
                )
                self.pages_followed += 1
                follow -= 1

    async def writer(self) -> None:
        while not self.stop.is_set():
            words = " ".join(WORDS[(self.writes + i) % len(WORDS)] for i in range(12))
            body = {"title": f"Written {self.writes}", "text": f"{words} {uuid.uuid4()}."}
            if await self._post("write", "/v1/documents", body) is not None:
                self.writes += 1
            await asyncio.sleep(0.2)


async def open_contexts(es: Any) -> int:
    stats = await es.nodes.stats(metric="indices", index_metric="search")
    return sum(n["indices"]["search"]["open_contexts"] for n in stats["nodes"].values())


async def seed(http: httpx.AsyncClient, es: Any, alias: str) -> None:
    """Store the seed corpus and wait until it is searchable."""
    docs = [
        {
            "title": f"Seed {i}",
            "text": " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(40)) + f" {i}.",
            "tags": [f"group{i % GROUPS}"],
        }
        for i in range(SEED_DOCUMENTS)
    ]
    for start in range(0, len(docs), 100):
        resp = await http.post("/v1/documents/batch", json={"documents": docs[start : start + 100]})
        resp.raise_for_status()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = await es.count(index=alias)  # one chunk per seed document
        if found["count"] >= SEED_DOCUMENTS:
            return
        await asyncio.sleep(1)
    raise RuntimeError("the seed corpus was not indexed within 10 minutes")


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    await prepare_database(settings, fresh=True)
    engine = create_engine(settings)
    try:
        _, key = await tenant_key(create_sessionmaker(engine), "bench-sustained")
    finally:
        await engine.dispose()
    es = create_es_client(settings)
    web = web_tier(env, Path(tempfile.mkdtemp(prefix="myaiserv-sustained-")), 1)
    samples: list[tuple[float, int]] = []
    await asyncio.to_thread(web.start)
    try:
        url = f"http://127.0.0.1:{web.web.port}"
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=CLIENTS + 4)
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=60, limits=limits
        ) as http:
            await seed(http, es, f"{PREFIX}-documents")
            baseline = await open_contexts(es)
            run = Run(http)
            started = time.monotonic()

            async def sample() -> None:
                while not run.stop.is_set():
                    samples.append((round(time.monotonic() - started, 1), await open_contexts(es)))
                    await asyncio.sleep(1)

            tasks = [asyncio.create_task(run.searcher(i)) for i in range(CLIENTS)]
            tasks += [asyncio.create_task(run.writer()), asyncio.create_task(sample())]
            await asyncio.sleep(DURATION_S)
            run.stop.set()
            await asyncio.gather(*tasks)
            duration = time.monotonic() - started
            await asyncio.sleep(2)
            after = await open_contexts(es)
    finally:
        await asyncio.to_thread(web.stop)
        await es.close()
    searches = sum(n for k, n in run.statuses.items() if k.startswith("search:"))
    errors = sum(n for k, n in run.statuses.items() if k not in ("search:200", "write:201"))
    figures = {
        "sustained": {
            "duration_s": round(duration, 1),
            "clients": CLIENTS,
            "searches": searches,
            "searches_per_s": round(searches / duration, 1),
            "pages_followed": run.pages_followed,
            "writes": run.writes,
            "errors": errors,
            "answers": dict(sorted(run.statuses.items())),
            "p50_ms": round(percentile(run.latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(run.latencies, 0.99) * 1000, 1),
            "open_contexts_baseline": baseline,
            "open_contexts_max": max(n for _, n in samples),
            "open_contexts_mean": round(statistics.fmean(n for _, n in samples), 2),
            "open_contexts_after": after,
            "open_contexts_samples": curve(samples),
        }
    }
    how = __doc__.strip() if __doc__ else ""
    report.save("search", figures, {"how_sustained": how}, merge=True)
    print(json.dumps({k: v for k, v in figures["sustained"].items() if "samples" not in k}))


if __name__ == "__main__":
    asyncio.run(main())
