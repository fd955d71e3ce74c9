"""One topology of the scale benchmark (`bench.growth`): a private stack, the corpus
ingested into it portion by portion through MyAIServ's own ingest path, sampled, with
searches measured as the corpus reaches each measuring point, and a checkpoint after
every portion.

Each portion is stored by `myaiserv ingest --tenant scale --no-index FOLDER` (extraction,
the document service, outbox rows) while one `myaiserv indexer run` process, as deployed,
drains the outbox (chunk, embed, bulk-write, refresh, settle); the portion is searchable
when its outbox rows are all settled. Every SAMPLE_S seconds the chunks searchable, the
chunks the indexer's model has embedded (its own counter), the chunks written into the
index, the outbox backlog, Elasticsearch's heap and the indexer's resident set are
sampled (the indexer makes a whole batch of up to 512 documents searchable at once, so
progress over time is read from the embedded and written counts); after the
portion, Elasticsearch's CPU (its own processes), the index's size on disk and its live
heap (in use right after a full collection, forced). The ingest clock runs only while a
portion is being ingested, so searches measured between portions are not counted in it.

The state (every figure so far) is kept in the work folder after each portion: a stage
that runs out of its time stops between portions, and the next one starts the stack again
from its folder and goes on. The single node's indexer writes every chunk's vector into
its embedding cache (Redis, a database of its own); those entries are saved after each
portion, so that the cluster can ingest the corpus beyond its first SCALE_CLUSTER_COLD_CHUNKS
chunks from vectors already computed (cache hits, as a reindex would), its Elasticsearch
doing the same work as when it embeds them itself.

It stays one module past 400 lines: the stack, its processes, the readings and the
checkpoint are one topology's run, sharing its context.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from redis.asyncio import Redis
from sqlalchemy import func, select

from bench.common import (
    bench_settings,
    cpu_seconds,
    es_pids,
    peak_rss_mb,
    prepare_database,
    private_stack_down,
    private_stack_up,
)
from bench.corpus import Selection
from myaiserv.config import Settings
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import DeadLetter, OutboxEvent
from myaiserv.evaluation.harness import free_port, spawn, stop, tenant_key
from myaiserv.search.client import create_es_client
from myaiserv.stack.elasticsearch import find_java_home
from myaiserv.stack.process import service_user

DB = "myaiserv_bench_scale"
PREFIX = "benchscale"
TENANT = "scale"
API_REDIS_DB, INDEXER_REDIS_DB = 1, 2
# Every chunk's cached vector must stay in Redis until it is saved (256 MB holds ~150k).
REDIS_MAXMEMORY = "2gb"
CACHE_TTL_S = 7 * 86400


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: int
    replicas: int


TOPOLOGIES = {"single": Topology("single", 1, 0), "cluster": Topology("cluster", 3, 1)}


def fits(now_s: float, deadline_s: float | None, chunks: int, rate: float, extra_s: float) -> bool:
    """Whether a portion of ``chunks`` at ``rate`` chunks/s (plus ``extra_s``, e.g. a
    measuring point) ends before ``deadline_s`` (None: no deadline)."""
    return deadline_s is None or now_s + chunks / max(rate, 1.0) + extra_s <= deadline_s


def rate_so_far(portions: list[dict[str, Any]], default: float = 20.0) -> float:
    """Chunks/s of the portions done (cold ones, where embedding sets the pace)."""
    cold = [p for p in portions if p["phase"] == "cold"] or portions
    seconds = sum(p["searchable_s"] for p in cold)
    return sum(p["new_chunks"] for p in cold) / seconds if seconds else default


def new_state(topology: str, selection: str) -> dict[str, Any]:
    return {"topology": topology, "selection": selection, "clock_s": 0.0, "portions": [],
            "points": {}, "complete": False}  # fmt: skip


class Context:
    """A topology's stack, settings, clients and processes while a stage runs."""

    def __init__(self, topology: Topology, selection: Selection, work: Path, sample_s: float):
        self.topology, self.selection, self.work = topology, selection, work
        self.sample_s = sample_s
        self.folder = work / "stacks" / f"{topology.name}-{selection.id}"
        # Named by the selection: runs of other sizes keep their own checkpoints.
        self.state_path = work / "state" / f"{topology.name}-{selection.id}.json"
        self.cache_dir = work / "state" / f"cache-{selection.id}"
        self.logs = work / "logs"
        self.state = new_state(topology.name, selection.id)
        if self.state_path.exists():
            saved = json.loads(self.state_path.read_text())
            # A stage goes on from its checkpoint while its stack's data is there.
            if saved.get("selection") == selection.id and (
                saved.get("complete") or self.folder.exists()
            ):
                self.state = saved
        self.indexer: subprocess.Popen[bytes] | None = None
        self.es: Any = None
        self.redis: Redis | None = None
        self.engine: Any = None
        self.cache_loaded = 0  # this run's indexer cache (Redis starts empty on every start)

    def save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(self.state, indent=1))

    # -- the stack and its processes ---------------------------------------------------

    async def up(self, es_heap: str) -> None:
        if not self.state["portions"]:
            shutil.rmtree(self.folder, ignore_errors=True)  # a fresh start
        config = await asyncio.to_thread(
            private_stack_up, self.folder, es_nodes=self.topology.nodes, es_heap=es_heap
        )
        self.config = config
        os.environ["MYAISERV_STACK_DIR"] = str(self.folder)  # bench_settings reads it
        self.settings, self.env = self._settings(API_REDIS_DB)
        self.indexer_settings, self.indexer_env = self._settings(INDEXER_REDIS_DB)
        await prepare_database(self.settings, fresh=not self.state["portions"])
        init = [sys.executable, "-m", "myaiserv", "index", "init"]
        await asyncio.to_thread(subprocess.run, init, env=self.env, check=True)
        self.engine = create_engine(self.settings)
        self.sessions = create_sessionmaker(self.engine)
        self.tenant_id, self.key = await tenant_key(self.sessions, TENANT, key_name="scale")
        self.es = create_es_client(self.settings)
        await self.es.cluster.health(wait_for_status="green", timeout="120s")
        self.redis = Redis.from_url(self.indexer_settings.redis_url)
        await self.redis.config_set("maxmemory", REDIS_MAXMEMORY)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.metrics_port = free_port()
        env = {**self.indexer_env, "MYAISERV_INDEXING__METRICS_PORT": str(self.metrics_port)}
        self.indexer = spawn(["indexer", "run"], env)

    def _settings(self, redis_db: int) -> tuple[Settings, dict[str, str]]:
        settings, env = bench_settings(DB, redis_db, PREFIX)
        replicas = self.topology.replicas
        env["MYAISERV_ES__REPLICAS"] = str(replicas)
        settings = settings.model_copy(
            update={"es": settings.es.model_copy(update={"replicas": replicas})}
        )
        return settings, env

    async def down(self) -> None:
        if self.indexer is not None:
            self.note_indexer_rss()
            stop([self.indexer])
            self.indexer = None
        if self.es is not None:
            await self.es.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.engine is not None:
            await self.engine.dispose()
        await asyncio.to_thread(private_stack_down, self.folder)

    def remove(self) -> None:
        """The stack's data, once the topology is complete (the figures are kept)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def note_indexer_rss(self) -> None:
        if self.indexer is not None and self.indexer.poll() is None:
            peak = peak_rss_mb(self.indexer.pid)
            self.state["indexer_peak_rss_mb"] = max(peak, self.state.get("indexer_peak_rss_mb", 0))

    # -- readings --------------------------------------------------------------------

    @property
    def alias(self) -> str:
        return f"{PREFIX}-documents"

    def es_cpu_s(self) -> float:
        return sum(cpu_seconds(pid) for pid in es_pids(self.config))

    async def chunks(self) -> int:
        return int((await self.es.count(index=self.alias))["count"])

    async def pending(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count(OutboxEvent.id))) or 0)

    async def dead_letters(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count(DeadLetter.id))) or 0)

    async def heap_bytes(self) -> int:
        stats = await self.es.nodes.stats(metric="jvm")
        return sum(int(n["jvm"]["mem"]["heap_used_in_bytes"]) for n in stats["nodes"].values())

    async def live_heap(self) -> int:
        """Elasticsearch's live heap, all nodes: each node's heap in use right after a full
        collection, forced with `jcmd <pid> GC.class_histogram` (run as the nodes' user;
        ``GC.run`` would only start a concurrent cycle). Without a collection, the heap in
        use says more about when the collector last ran than about what the index holds."""
        jcmd = str(find_java_home() / "bin" / "jcmd")
        for pid in es_pids(self.config):
            await asyncio.to_thread(
                subprocess.run, [jcmd, str(pid), "GC.class_histogram"], capture_output=True,
                check=True, **service_user().popen_kwargs(),
            )  # fmt: skip
        await asyncio.sleep(1)
        return await self.heap_bytes()

    async def disk(self) -> tuple[int, int]:
        """(primaries, all copies): the documents index's store size in bytes."""
        stats = await self.es.indices.stats(index=self.alias, metric="store")
        every = stats["_all"]
        return (
            int(every["primaries"]["store"]["size_in_bytes"]),
            int(every["total"]["store"]["size_in_bytes"]),
        )

    def indexer_rss_mb(self) -> float:
        assert self.indexer is not None
        for line in Path(f"/proc/{self.indexer.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    # -- the embedding cache ---------------------------------------------------------

    def _cache_keys(self) -> str:
        return f"{PREFIX}:emb:*:index:*"

    async def save_cache(self, portion: int) -> int:
        """The indexer's cached vectors not saved before, into ``cache_dir/<portion>.npz``."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        saved: set[str] = set()
        for path in self.cache_dir.glob("*.npz"):
            saved.update((await asyncio.to_thread(_read_cache, path))[0])
        keys = [k.decode() async for k in self.redis.scan_iter(self._cache_keys(), count=5000)]
        keys = sorted(set(keys) - saved)
        values: list[bytes] = []
        for i in range(0, len(keys), 2000):
            values += await self.redis.mget(keys[i : i + 2000])
        kept = [(k, v) for k, v in zip(keys, values, strict=True) if v is not None]
        if kept:
            np.savez(
                self.cache_dir / f"{portion:02d}.npz",
                keys=np.array([k for k, _ in kept]),
                values=np.stack([np.frombuffer(v, dtype=np.uint8) for _, v in kept]),
            )
        return len(kept)

    async def load_cache(self, cache_dir: Path) -> int:
        """Every vector the single node's indexer cached, into this indexer's cache."""
        loaded = 0
        for path in await asyncio.to_thread(lambda: sorted(cache_dir.glob("*.npz"))):
            keys, values = await asyncio.to_thread(_read_cache, path)
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in zip(keys, values, strict=True):
                    pipe.set(key, value.tobytes(), ex=CACHE_TTL_S)
                await pipe.execute()
            loaded += len(keys)
        return loaded

    # -- one portion -----------------------------------------------------------------

    async def embedded(self) -> float:
        """Texts the indexer's model has embedded so far (its own counter, on its /metrics;
        it moves every 64 texts, where the chunks searchable move a whole batch at once)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                text = (await http.get(url)).text
        except httpx.HTTPError:
            return 0.0
        for line in text.splitlines():
            if line.startswith("myaiserv_embedding_items_total "):
                return float(line.split()[1])
        return 0.0

    async def written(self) -> int:
        """Chunks bulk-written into the documents index so far (primaries, before refresh)."""
        stats = await self.es.indices.stats(index=self.alias, metric="indexing")
        return int(stats["_all"]["primaries"]["indexing"]["index_total"])

    async def reading(self, clock_s: float, base: tuple[int, float, int]) -> list[float]:
        """One sample: [ingest clock, chunks searchable, outbox rows, heap MB, indexer RSS
        MB, chunks embedded, chunks written]; the last two counted from ``base`` (the
        portion's searchable chunks, embedded and written counters at its start), so they
        read as chunks across portions and indexer restarts."""
        return [
            round(clock_s, 1),
            await self.chunks(),
            await self.pending(),
            round(await self.heap_bytes() / 2**20, 1),
            round(self.indexer_rss_mb(), 1),
            base[0] + await self.embedded() - base[1],
            base[0] + await self.written() - base[2],
        ]

    async def ingest(self, index: int, folder: Path, expected: int, phase: str) -> dict[str, Any]:
        """Portion ``index`` stored and made searchable; its figures."""
        assert self.indexer is not None
        before = await self.chunks()
        cpu_before, indexer_cpu_before = self.es_cpu_s(), cpu_seconds(self.indexer.pid)
        clock0, started = self.state["clock_s"], time.monotonic()
        samples: list[list[float]] = []
        done = asyncio.Event()
        base = (before, await self.embedded(), await self.written())

        async def sample() -> None:
            while not done.is_set():
                samples.append(await self.reading(clock0 + time.monotonic() - started, base))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), self.sample_s)

        sampler = asyncio.create_task(sample())
        try:
            log = self.logs / f"{self.topology.name}-store-{index:02d}.log"
            summary, usage = await asyncio.to_thread(store, folder, self.indexer_env, log)
            stored = time.monotonic()
            while await self.pending():
                if self.indexer.poll() is not None:
                    raise RuntimeError("the indexer exited while indexing")
                await asyncio.sleep(1)
            searchable = time.monotonic()
        finally:
            done.set()
            await sampler
        clock = clock0 + searchable - started
        await self.es.indices.refresh(index=self.alias)
        after = await self.chunks()
        samples.append(await self.reading(clock, base))
        self.state["clock_s"] = round(clock, 1)
        primary, total = await self.disk()
        self.note_indexer_rss()
        return {
            "index": index,
            "phase": phase,
            "documents": summary.get("documents", 0),
            "failed": summary.get("failed", 0),
            "chunks_expected": expected,
            "chunks": after,
            "new_chunks": after - before,
            "store_s": round(stored - started, 1),
            "searchable_s": round(searchable - started, 1),
            "backlog_s": round(searchable - stored, 1),
            "es_cpu_s": round(self.es_cpu_s() - cpu_before, 1),
            "indexer_cpu_s": round(cpu_seconds(self.indexer.pid) - indexer_cpu_before, 1),
            "storer_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "storer_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "heap_before_gc_bytes": await self.heap_bytes(),
            "live_heap_bytes": await self.live_heap(),
            "disk_primary_bytes": primary,
            "disk_bytes": total,
            "dead_letters": await self.dead_letters(),
            "samples": samples,
        }


def _read_cache(path: Path) -> tuple[list[str], Any]:
    data = np.load(path)
    return data["keys"].tolist(), data["values"]


def store(folder: Path, env: dict[str, str], log: Path) -> tuple[dict[str, Any], Any]:
    """`myaiserv ingest --tenant scale --no-index --json FOLDER`: (its summary, its resource
    usage as its parent sees that child alone: CPU, peak RSS)."""
    command = [sys.executable, "-m", "myaiserv", "ingest", "--tenant", TENANT,
               "--no-index", "--json", str(folder)]  # fmt: skip
    with (
        tempfile.TemporaryFile() as out,
        log.open("wb") as err,
    ):
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise RuntimeError(f"myaiserv ingest exited {proc.returncode}: see {log}")
        out.seek(0)
        lines = out.read().decode().splitlines()
    for line in reversed(lines):  # the summary is the last JSON object with "documents"
        with contextlib.suppress(ValueError):
            summary = json.loads(line)
            if isinstance(summary, dict) and "documents" in summary:
                return summary, usage
    raise RuntimeError(f"myaiserv ingest printed no summary: see {log}")


async def run_topology(
    topology: Topology,
    selection: Selection,
    work: Path,
    *,
    es_heap: str,
    sample_s: float,
    deadline: float | None,
    point_s: float,
    measure: Callable[[Context, int], Awaitable[None]],
    finish: Callable[[Context], Awaitable[None]],
    warm_from: int | None = None,
) -> dict[str, Any]:
    """Ingest what is left of ``selection`` on ``topology`` (from its checkpoint), calling
    ``measure(context, nominal size)`` after each portion that reaches a measuring point and
    ``finish(context)`` after the last; stops before a portion that would not end (with its
    searches, ``point_s`` seconds) by ``deadline`` (a monotonic time). Portions from
    ``warm_from`` on are ingested with the single node's cached vectors loaded first (None:
    all cold). Returns the state."""
    ctx = Context(topology, selection, work, sample_s)
    if ctx.state["complete"]:
        print(f"scale: {topology.name} is complete (its state: {ctx.state_path})", flush=True)
        return ctx.state
    started = time.monotonic()
    await ctx.up(es_heap)
    try:
        for index in range(len(ctx.state["portions"]), len(selection.folders)):
            expected = selection.portion_chunks[index]
            point = selection.points.get(index)
            extra = point_s if point else 0
            if not fits(
                time.monotonic(), deadline, expected, rate_so_far(ctx.state["portions"]), extra
            ):
                print(f"scale: {topology.name}: stopping before portion {index} (time); "
                      "run the stage again to go on", flush=True)  # fmt: skip
                return ctx.state
            phase = "cold"
            if warm_from is not None and index >= warm_from:
                phase = "warm"
                if not ctx.cache_loaded:
                    ctx.cache_loaded = await ctx.load_cache(ctx.cache_dir)
                    ctx.state["cached_vectors_loaded"] = ctx.cache_loaded
            print(
                f"scale: {topology.name}: portion {index} ({expected} chunks, {phase})", flush=True
            )
            figures = await ctx.ingest(index, selection.folders[index], expected, phase)
            if topology.name == "single":
                figures["cached_vectors_saved"] = await ctx.save_cache(index)
            ctx.state["portions"].append(figures)
            ctx.save()
            rate = figures["new_chunks"] / max(figures["searchable_s"], 0.1)
            print(f"scale: {topology.name}: {figures['chunks']} chunks searchable, "
                  f"{rate:.1f} chunks/s this portion", flush=True)  # fmt: skip
            if point:
                await measure(ctx, point)
                ctx.save()
        await finish(ctx)
        ctx.state["complete"] = True
        ctx.save()
    finally:
        await ctx.down()
        # The stage's own time, over every run it took (stack starts and searches too).
        ctx.state["stage_s"] = round(ctx.state.get("stage_s", 0) + time.monotonic() - started, 1)
        ctx.save()
    if ctx.state["complete"]:
        ctx.remove()
    return ctx.state
