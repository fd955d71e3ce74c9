"""What the soak (`bench/soak.py`) samples, and how it judges a series.

Samples: the memory of every process of the web tier and of its servers (from /proc),
Elasticsearch's heap and open search contexts, Redis's memory, the outbox's lag; request
latencies per time window, from the locust users' request log. Judging: a series grows
when its median over the last quarter of the run is above its median over the second
quarter (the first quarter is warm-up) by more than the series' tolerance, and the
straight line fitted to its second half rises.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.search_sustained import percentile
from myaiserv.db.outbox import OutboxRepository

MB = 1024 * 1024


# -- processes ---------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int | None:
    """Proportional set size: shared pages split among the processes sharing them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def parents() -> dict[int, int]:
    """Every process's parent, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        found[int(stat.parent.name)] = int(fields[1])
    return found


def tree(pid: int, parent_of: dict[int, int]) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = defaultdict(list)
    for child, parent in parent_of.items():
        children[parent].append(child)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


@dataclass(frozen=True)
class Watched:
    """A process to sample: its RSS with its children's (``rss``: an API instance, nginx's
    master and worker), or the PSS of it and its children summed (``pss``: PostgreSQL,
    whose backends map the same shared buffers; their RSS summed would count them once
    per backend that touched them)."""

    name: str
    pid: int
    measure: str = "rss"


def memory_mb(watched: Iterable[Watched]) -> dict[str, float]:
    """Each watched process's memory in MB (a process that is gone is left out)."""
    parent_of = parents()
    out = {}
    for w in watched:
        total_kb = 0
        try:
            for pid in tree(w.pid, parent_of):
                pss = _pss_kb(pid) if w.measure == "pss" else None
                total_kb += pss if pss is not None else _status_kb(pid, "VmRSS")
        except OSError:
            continue
        out[w.name] = round(total_kb / 1024, 1)
    return out


# -- servers -----------------------------------------------------------------------------


async def elasticsearch(es: Any) -> dict[str, float]:
    """Heap used now; open search contexts (searches, scrolls and points in time holding a
    reader) and open scrolls; summed over the nodes."""
    stats = await es.nodes.stats(metric="jvm,indices", index_metric="search")
    out = {"heap_used_mb": 0.0, "open_contexts": 0.0, "scrolls": 0.0}
    for node in stats["nodes"].values():
        out["heap_used_mb"] += node["jvm"]["mem"]["heap_used_in_bytes"] / MB
        search = node["indices"]["search"]
        out["open_contexts"] += search["open_contexts"]
        out["scrolls"] += search["scroll_current"]
    return {k: round(v, 1) for k, v in out.items()}


# A pause in the JVM's unified GC log (the node logs every collection to logs/gc.log), as
# in: GC(8) Pause Young (Normal) (G1 Evacuation Pause) 315M->39M(512M) 24.628ms.
_PAUSE = re.compile(r"GC\(\d+\) Pause .* (\d+)([KMG])->(\d+)([KMG])\((\d+)[KMG]\)")
_UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}


def heap_after_gc_mb(gc_log: Path, tail_bytes: int = 256 * 1024) -> float | None:
    """The heap after the node's last collection, from the end of its GC log (None
    without one)."""
    try:
        with gc_log.open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - tail_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    pauses = _PAUSE.findall(text)
    if not pauses:
        return None
    after, unit = pauses[-1][2], pauses[-1][3]
    return round(int(after) * _UNIT_MB[unit], 1)


async def redis_memory_mb(redis: Any) -> tuple[float, float]:
    """Used memory, and the most Redis may use (maxmemory; 0: no bound), in MB."""
    info = await redis.info("memory")
    return round(int(info["used_memory"]) / MB, 2), round(int(info["maxmemory"]) / MB, 1)


async def redis_keys(redis: Any, batch: int = 500) -> dict[str, dict[str, float]]:
    """What Redis holds, by kind of key (``<namespace>:<kind>:...``: emb, search, window,
    ...): keys, their memory in MB (MEMORY USAGE) and how many never expire."""
    out: dict[str, dict[str, float]] = {}
    keys = [k async for k in redis.scan_iter(count=1000)]
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        pipe = redis.pipeline(transaction=False)
        for key in chunk:
            pipe.memory_usage(key, samples=0)
            pipe.ttl(key)
        replies = await pipe.execute()
        for i, key in enumerate(chunk):
            parts = (key.decode() if isinstance(key, bytes) else key).split(":")
            kind = parts[1] if len(parts) > 2 else parts[0]
            group = out.setdefault(kind, {"keys": 0, "mb": 0.0, "without_expiry": 0})
            group["keys"] += 1
            group["mb"] += (replies[2 * i] or 0) / MB
            group["without_expiry"] += replies[2 * i + 1] == -1
    return {k: {**g, "mb": round(g["mb"], 2)} for k, g in sorted(out.items())}


async def outbox(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, float]:
    """(rows pending, age in seconds of the oldest)."""
    async with sessions() as session:
        return await OutboxRepository(session).lag()


class Sampler:
    """The series, as [seconds since the load started, value] points: at each sample,
    every process's memory, Redis's, the outbox's lag, Elasticsearch's heap after its
    last collection (used, where the node keeps no GC log), and the most open contexts
    and scrolls among the probes (every ``probe_s`` while ``probe()`` runs) since the
    last sample: they come and go with each search."""

    def __init__(
        self,
        watched: list[Watched],
        es: Any,
        gc_log: Path,
        redis: Any,
        sessions: Any,
        *,
        probe_s: float,
    ) -> None:
        self.watched = watched
        self.probe_s = probe_s
        self.es, self.gc_log, self.redis, self.sessions = es, gc_log, redis, sessions
        self.series: dict[str, list[list[float]]] = {}
        self.probes: list[dict[str, float]] = []  # Elasticsearch, since the last sample
        self.redis_maxmemory_mb = 0.0
        self.started = time.time()

    def add(self, name: str, t: float, value: float) -> None:
        self.series.setdefault(name, []).append([t, value])

    async def probe(self) -> None:
        while True:
            self.probes.append(await elasticsearch(self.es))
            await asyncio.sleep(self.probe_s)

    async def sample(self) -> None:
        t = round(time.time() - self.started, 1)
        for name, mb in (await asyncio.to_thread(memory_mb, self.watched)).items():
            self.add(f"memory_mb.{name}", t, mb)
        now = await elasticsearch(self.es)
        probes, self.probes = [*self.probes, now], []
        after_gc = await asyncio.to_thread(heap_after_gc_mb, self.gc_log)
        if after_gc is not None:
            self.add("es_heap_after_gc_mb", t, after_gc)
        else:  # no GC log: the heap as it is, between collections
            self.add("es_heap_used_mb", t, now["heap_used_mb"])
        self.add("es_open_contexts", t, max(p["open_contexts"] for p in probes))
        self.add("es_scrolls", t, max(p["scrolls"] for p in probes))
        used, self.redis_maxmemory_mb = await redis_memory_mb(self.redis)
        self.add("redis_used_mb", t, used)
        backlog, oldest = await outbox(self.sessions)
        self.add("outbox_backlog", t, backlog)
        self.add("outbox_oldest_s", t, round(oldest, 1))


# -- requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    started: float  # epoch seconds
    name: str
    status: int  # 0: no HTTP answer
    ms: float


def read_log(lines: Iterable[str]) -> list[Request]:
    """The locust users' request log ($LOAD_LOG): ``start name status ms`` per line."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 4:
            out.append(Request(float(parts[0]), parts[1], int(parts[2]), float(parts[3])))
    return out


def windows(
    requests: Iterable[Request], start: float, every_s: float
) -> dict[str, list[list[float]]]:
    """Per request name, one point per window of ``every_s`` seconds from ``start``: the
    window's end (seconds from ``start``), its request count, p50 and p99 (ms)."""
    buckets: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in requests:
        if r.started >= start:
            buckets[r.name][int((r.started - start) // every_s)].append(r.ms)
    return {
        name: [
            [
                round((i + 1) * every_s, 1),
                len(ms),
                round(percentile(ms, 0.5), 1),
                round(percentile(ms, 0.99), 1),
            ]
            for i, ms in sorted(by_window.items())
        ]
        for name, by_window in sorted(buckets.items())
    }


def answers(requests: Iterable[Request]) -> dict[str, dict[str, int]]:
    """Per request name, the count of each status."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in requests:
        counts[r.name][str(r.status)] += 1
    return {name: dict(sorted(c.items())) for name, c in sorted(counts.items())}


# -- growth ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How much a series may rise from the second quarter to the last before it counts as
    growing: the larger of ``relative`` (of the second quarter's median) and ``absolute``
    (its unit)."""

    relative: float
    absolute: float


def _median(points: list[list[float]], lo: float, hi: float) -> float | None:
    values = [v for t, v in points if lo <= t <= hi]
    return statistics.median(values) if values else None


def slope_per_hour(points: list[list[float]]) -> float:
    """The least-squares line's slope, per hour (0 for fewer than two distinct times)."""
    if len({t for t, _ in points}) < 2:
        return 0.0
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    num = sum((t - mt) * (v - mv) for t, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return num / den * 3600


def growth(points: list[list[float]], duration_s: float, tolerance: Tolerance) -> dict[str, Any]:
    """A series' ([seconds, value] points over ``duration_s``) change over the run."""
    q2 = _median(points, duration_s / 4, duration_s / 2)
    q4 = _median(points, 3 * duration_s / 4, duration_s)
    slope = slope_per_hour([p for p in points if p[0] >= duration_s / 2])
    out: dict[str, Any] = {
        "first": points[0][1] if points else None,
        "last": points[-1][1] if points else None,
        "max": max((v for _, v in points), default=None),
        "q2_median": q2,
        "q4_median": q4,
        "growth_pct": (round((q4 - q2) / q2 * 100, 1) or 0.0) if q2 and q4 is not None else None,
        "slope_per_h": round(slope, 2),
        "grows": False,
    }
    if q2 is not None and q4 is not None:
        allowed = max(tolerance.relative * abs(q2), tolerance.absolute)
        out["grows"] = q4 - q2 > allowed and slope > 0
    return out
