"""The scale benchmark's figures (`bench.growth`), computed from its stages' saved states:
throughput over the ingest clock, its quarters and windows, Elasticsearch's costs per
chunk, and the ``scale`` section's keys (the headline ones from the single node, the
detail under ``single`` and ``cluster``). Pure, so unit-tested and readable by the sizing
plan."""

from __future__ import annotations

import itertools
import statistics
from typing import Any

# Sample columns: [ingest clock s, chunks searchable, outbox rows, heap MB, indexer RSS MB,
# chunks embedded, chunks written]
SEARCHABLE, EMBEDDED, WRITTEN = 1, 5, 6


def throughput(
    samples: list[list[float]], width_s: float = 60.0, column: int = SEARCHABLE
) -> list[list[float]]:
    """[[ingest clock at the window's end, chunks/s over the window], ...]: the samples'
    ``column`` (a count of chunks) over windows of at least ``width_s``."""
    out: list[list[float]] = []
    if not samples:
        return out
    start = samples[0]
    for sample in samples[1:]:
        if sample[0] - start[0] >= width_s:
            rate = (sample[column] - start[column]) / (sample[0] - start[0])
            out.append([sample[0], round(rate, 2)])
            start = sample
    return out


def quarter_rates(samples: list[list[float]], column: int = SEARCHABLE) -> list[float]:
    """Chunks/s over each quarter of the chunks counted in the samples' ``column`` (the
    time each quarter's last chunk was reached, interpolated between samples)."""
    samples = [[s[0], s[column]] for s in samples]
    if len(samples) < 2 or samples[-1][1] <= samples[0][1]:
        return []
    first, total = samples[0][1], samples[-1][1] - samples[0][1]
    marks = [first + total * i / 4 for i in range(5)]
    times = [samples[0][0]]
    for mark in marks[1:]:
        for before, after in itertools.pairwise(samples):
            if after[1] >= mark > before[1] or (mark == first and after[1] >= mark):
                share = (mark - before[1]) / (after[1] - before[1])
                times.append(before[0] + share * (after[0] - before[0]))
                break
    return [round((total / 4) / (b - a), 2) if b > a else 0.0 for a, b in itertools.pairwise(times)]


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y on x (None for fewer than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def warm_portion(portion_chunks: list[int], cold_chunks: int) -> int | None:
    """The first portion that starts at or past ``cold_chunks`` (the cluster ingests it
    and the rest from cached vectors), or None."""
    total = 0
    for index, chunks in enumerate(portion_chunks):
        if total >= cold_chunks:
            return index
        total += chunks
    return None


def _rate(portions: list[dict[str, Any]]) -> float | None:
    seconds = sum(p["searchable_s"] for p in portions)
    return round(sum(p["new_chunks"] for p in portions) / seconds, 2) if seconds else None


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


PORTION_KEYS = ("phase", "chunks", "new_chunks", "documents", "store_s", "searchable_s",
                "backlog_s", "es_cpu_s")  # fmt: skip


def _per_chunk(total: float, chunks: int, digits: int = 5) -> float:
    return round(total / max(chunks, 1), digits)


def topology_figures(state: dict[str, Any]) -> dict[str, Any]:
    """One topology's figures from its state (its portions and measuring points). The
    end-to-end ingest figures are of its cold portions (the model embedding every chunk),
    the cached ones of its warm portions; Elasticsearch's and the processes' costs are of
    them all (the same work either way)."""
    portions = state.get("portions", [])
    if not portions:
        return {}
    cold = [p for p in portions if p["phase"] == "cold"]
    warm = [p for p in portions if p["phase"] == "warm"]
    last = portions[-1]
    chunks = last["chunks"]
    cold_samples = [s for p in cold for s in p["samples"]]
    # 60 s windows; a short (small) run gets windows of a twentieth of it, 10 s at least.
    clock = state.get("clock_s", 0.0)
    width = 60.0 if clock >= 1200 else max(10.0, clock / 20)
    # Progress over time: embedded chunks where the model embeds them (they become
    # searchable a batch at a time), written ones where the vectors come from the cache.
    windows = throughput(cold_samples, width, EMBEDDED)
    rates = [w[1] for w in windows]
    quarters = quarter_rates(cold_samples, EMBEDDED)
    heap = [(p["chunks"], p["live_heap_bytes"]) for p in portions]
    heap_slope = slope([(float(c), float(h)) for c, h in heap])
    backlog = max(portions, key=lambda p: p["backlog_s"])
    cold_chunks = sum(p["new_chunks"] for p in cold)
    out: dict[str, Any] = {
        "complete": state.get("complete", False),
        "chunks": chunks,
        "chunks_counted": sum(p["chunks_expected"] for p in portions),
        "documents": sum(p["documents"] for p in portions),
        "failed_documents": sum(p["failed"] for p in portions),
        "dead_letters": last["dead_letters"],
        "ingest_chunks_per_s": _rate(cold),
        "ingest_chunks": cold_chunks,
        "ingest_window_p10_chunks_per_s": _percentile(rates, 0.1) if rates else None,
        "ingest_window_p90_chunks_per_s": _percentile(rates, 0.9) if rates else None,
        "ingest_quarters_chunks_per_s": quarters,
        "ingest_last_to_first_quarter": (
            round(quarters[-1] / quarters[0], 3) if len(quarters) == 4 and quarters[0] else None
        ),
        "searchable_s": round(sum(p["searchable_s"] for p in portions), 1),
        "largest_backlog_s": backlog["backlog_s"],
        "largest_backlog_chunks": backlog["new_chunks"],
        "es_index_cpu_s_per_chunk": _per_chunk(sum(p["es_cpu_s"] for p in portions), chunks),
        "indexer_cpu_s_per_chunk": _per_chunk(sum(p["indexer_cpu_s"] for p in cold), cold_chunks),
        "storer_cpu_s_per_chunk": _per_chunk(sum(p["storer_cpu_s"] for p in portions), chunks),
        "es_disk_bytes": last["disk_bytes"],
        "es_disk_primary_bytes": last["disk_primary_bytes"],
        "es_disk_bytes_per_chunk": _per_chunk(last["disk_bytes"], chunks, 1),
        "es_disk_primary_bytes_per_chunk": _per_chunk(last["disk_primary_bytes"], chunks, 1),
        "es_live_heap_bytes": [[c, h] for c, h in heap],
        "es_heap_bytes_per_chunk": round(heap_slope, 1) if heap_slope is not None else None,
        "indexer_peak_rss_mb": state.get("indexer_peak_rss_mb"),
        "storer_peak_rss_mb": max(p["storer_peak_rss_mb"] for p in portions),
        "portions": [{k: p[k] for k in PORTION_KEYS} for p in portions],
        # [ingest clock s, chunks/s over the window before it, 0 end to end / 1 cached]
        "throughput": [[t, r, 0] for t, r in windows]
        + [
            [t, r, 1]
            for t, r in throughput([s for p in warm for s in p["samples"]], width, WRITTEN)
        ],
        "throughput_window_s": round(width, 1),
    }
    if warm:
        out["ingest_cached_chunks_per_s"] = _rate(warm)
        out["ingest_cached_chunks"] = sum(p["new_chunks"] for p in warm)
    out.update(state.get("points", {}))  # "<nominal size>": its search figures
    out.update({k: state[k] for k in ("recall", "encode") if k in state})
    return out


TOP = ("ingest_chunks_per_s", "es_disk_primary_bytes_per_chunk", "es_heap_bytes_per_chunk",
       "es_index_cpu_s_per_chunk")  # fmt: skip


def figures(states: dict[str, dict[str, Any]], corpus_info: dict[str, Any]) -> dict[str, Any]:
    """The ``scale`` section: the headline keys from the single node (the whole corpus
    embedded end to end; the cluster's where the single node has not run), the topologies'
    detail under ``single`` and ``cluster``, and the runs and vector options stages'."""
    out: dict[str, Any] = {"corpus": corpus_info}
    topologies = {
        name: topology_figures(states[name]) for name in ("single", "cluster") if name in states
    }
    topologies = {k: v for k, v in topologies.items() if v}
    out.update(topologies)
    head = topologies.get("single") or topologies.get("cluster")
    if head:
        out["max_chunks"] = head["chunks"]
        for key in TOP:
            out[key.replace("_primary", "")] = head[key]
        sizes = sorted((k for k in head if k.isdigit()), key=int)
        out["sizes"] = [int(k) for k in sizes]
        for size in sizes:
            out[size] = head[size]
        if "encode" in head:
            # the sizing plan's name (bench/sizing.py): seconds of one core per chunk
            out["encode_s_per_chunk_core"] = head["encode"]["s_per_chunk_one_core"]
            if "dims" in head["encode"]:
                out["dims"] = head["encode"]["dims"]
        largest = head[sizes[-1]] if sizes else {}
        if "api_cpu_s_per_search" in largest:
            out["api_cpu_s_per_search"] = largest["api_cpu_s_per_search"]
        if "recall" in head:
            out["recall_at_10"] = head["recall"]["recall_at_10"]
        out["headline_topology"] = "single" if "single" in topologies else "cluster"
    if "vectors" in states:
        out["vectors"] = states["vectors"]
    if "runs" in states:
        runs = states["runs"]
        out["runs"] = runs
        out["runs_search_p50_ms"] = runs.get("text_p50_ms")
        out["runs_search_p99_ms"] = runs.get("text_p99_ms")
        for kind in ("filters", "dashboard"):
            for p in ("p50", "p99"):
                if f"{kind}_{p}_ms" in runs:
                    out[f"runs_{kind}_{p}_ms"] = runs[f"{kind}_{p}_ms"]
    return out
