"""The report's section on the scale benchmark (`make bench-scale`, bench/growth.py):
every table gives the corpus size in each row, how each figure was measured and its
spread. Rendered by bench/report.py from results.json's ``scale`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.plots import get

PLOTS = Path(__file__).resolve().parent / "plots"
TOPOLOGIES = {"single": "1 node", "cluster": "3 nodes, replicas 1"}


def _plot(name: str) -> list[str]:
    return [f"![{name}](plots/{name}.png)", ""] if (PLOTS / f"{name}.png").exists() else []


def _num(value: Any, fmt: str = "{:,.1f}") -> str:
    return fmt.format(value) if isinstance(value, int | float) else "-"


def _points(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [t[k] for k in sorted((k for k in t if k.isdigit()), key=int)]


def _latency(r: dict[str, Any], mode: str) -> str:
    if f"{mode}_p50_ms" not in r:
        return "-"
    return (
        f"{r[f'{mode}_p50_ms']:.1f} ({r[f'{mode}_p50_min_ms']:.1f}-{r[f'{mode}_p50_max_ms']:.1f})"
        f" / {r[f'{mode}_p99_ms']:.1f}"
    )


def _corpus(c: dict[str, Any]) -> list[str]:
    composition = c.get("composition") or {}
    if not composition:
        return []
    lines = [
        "| package | version | documents used / there | chunks used / there |",
        "| --- | --- | --- | --- |",
    ]
    for name, version in c.get("packages", {}).items():
        row = composition.get(name, {})
        lines.append(
            f"| {name} | {version} | {row.get('chosen_documents', 0):,} / "
            f"{row.get('available_documents', 0):,} | {row.get('chosen_chunks', 0):,} / "
            f"{row.get('available_chunks', 0):,} |"
        )
    return [*lines, ""]


def _search(s: dict[str, Any]) -> list[str]:
    lines = [
        "### Search as the corpus grows",
        "",
        (
            "Milliseconds, one client, client time: p50 (lowest-highest per-round p50) / p99; "
            "cached: the hybrid page from Redis (its server time in brackets)."
        ),
        "",
        (
            "| topology | chunks | bm25 | vector | hybrid, uncached | cached (server p50) | "
            "direct client (the limit) | hybrid p50 / direct p50 | API peak RSS MB |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in TOPOLOGIES.items():
        for r in _points(s.get(name) or {}):
            ratio = r["hybrid_p50_ms"] / r["direct_p50_ms"] if r.get("direct_p50_ms") else None
            cached = _latency(r, "cached")
            if "server_cached_p50_ms" in r:
                cached += f" ({r['server_cached_p50_ms']:.2f})"
            lines.append(
                f"| {label} | {r['chunks']:,} | {_latency(r, 'bm25')} | {_latency(r, 'vector')} "
                f"| {_latency(r, 'hybrid')} | {cached} | {_latency(r, 'direct')} | "
                f"{_num(ratio, '{:.2f}')} | {_num(r.get('api_peak_rss_mb'), '{:,.0f}')} |"
            )
    recall = get(s, "single.recall")
    if recall:
        deep = recall.get(f"recall_at_{recall['k']}", 0)
        lines += [
            "",
            (
                f"kNN recall@10 against exact search at {recall['chunks']:,} chunks: "
                f"{recall['recall_at_10']:.4f} (recall@{recall['k']}: "
                f"{deep:.4f}), {recall['queries']} queries, "
                f"`{recall['index_type']}`, k={recall['k']}, num_candidates="
                f"{recall['num_candidates']}, as the API asks."
            ),
        ]
    return [*lines, "", *_plot("scale_search")]


def _ingest(s: dict[str, Any]) -> list[str]:
    window = get(s, "single.throughput_window_s") or get(s, "cluster.throughput_window_s") or 60
    lines = [
        "### Ingest",
        "",
        (
            "End to end: chunks searchable over the ingest clock (every portion from the start "
            "of `myaiserv ingest` until its last outbox row is settled; searches between "
            "portions not counted), the model embedding every chunk. Over time (the plot, "
            f"{window:g} s windows, and the quarters): the indexer's model's own count of "
            "chunks embedded, since the indexer makes a batch of up to 512 documents "
            "searchable at once; from cached vectors: chunks written into the index."
        ),
        "",
        (
            "| topology | chunks | end to end chunks/s (windows p10-p90) | by quarter of the "
            "chunks | last / first quarter | from cached vectors, chunks/s | all searchable "
            "after s | longest backlog after storing s (chunks) | indexer / storer peak RSS MB |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in TOPOLOGIES.items():
        t = s.get(name)
        if not t:
            continue
        quarters = ", ".join(f"{q:.1f}" for q in t.get("ingest_quarters_chunks_per_s") or [])
        lines.append(
            f"| {label} | {t['chunks']:,} ({t['ingest_chunks']:,} end to end) | "
            f"{_num(t['ingest_chunks_per_s'])} ({_num(t['ingest_window_p10_chunks_per_s'])}-"
            f"{_num(t['ingest_window_p90_chunks_per_s'])}) | {quarters or '-'} | "
            f"{_num(t.get('ingest_last_to_first_quarter'), '{:.2f}')} | "
            f"{_num(t.get('ingest_cached_chunks_per_s'))} | {_num(t['searchable_s'], '{:,.0f}')} | "
            f"{_num(t['largest_backlog_s'], '{:,.0f}')} ({t['largest_backlog_chunks']:,}) | "
            f"{_num(t.get('indexer_peak_rss_mb'), '{:,.0f}')} / "
            f"{_num(t.get('storer_peak_rss_mb'), '{:,.0f}')} |"
        )
    encode = get(s, "single.encode")
    if encode:
        lines += [
            "",
            (
                f"Encoding alone ({encode['backend']}, {encode['chunks']} corpus chunks): "
                f"{encode['s_per_chunk_one_core'] * 1000:.1f} ms per chunk on one core, "
                f"{encode['s_per_chunk_all_cores'] * 1000:.1f} ms on all {encode['cores']}."
            ),
        ]
    return [*lines, "", *_plot("scale_ingest")]


def _per_100k(bytes_per_chunk: Any) -> str:
    return _num(bytes_per_chunk * 100_000 / 2**20, "{:,.0f}") if bytes_per_chunk else "-"


def _costs(s: dict[str, Any]) -> list[str]:
    lines = [
        "### Elasticsearch and process costs",
        "",
        (
            "Per chunk, and in MB per 100,000 chunks. Disk: the documents index's store at the "
            "largest size. Heap: the slope, against the chunks, of the live heap after each "
            "portion (all nodes, in use right after a full collection forced with jcmd). CPU: the "
            "processes' own user + system time over the whole ingest."
        ),
        "",
        (
            "| topology | chunks | disk, all copies: bytes per chunk (MB per 100k) | disk, "
            "primaries | heap: bytes per chunk (MB per 100k) | live heap MB, by chunks | "
            "Elasticsearch CPU s per chunk | indexer CPU s per chunk (end to end) | storing "
            "CPU s per chunk |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in TOPOLOGIES.items():
        t = s.get(name)
        if not t:
            continue
        live = ", ".join(f"{c:,}: {h / 2**20:.0f}" for c, h in t.get("es_live_heap_bytes", []))
        disk, primary = t["es_disk_bytes_per_chunk"], t["es_disk_primary_bytes_per_chunk"]
        heap = t.get("es_heap_bytes_per_chunk")
        lines.append(
            f"| {label} | {t['chunks']:,} | {disk:,.0f} ({_per_100k(disk)}) | {primary:,.0f} "
            f"({_per_100k(primary)}) | {_num(heap, '{:,.0f}')} ({_per_100k(heap)}) | {live} | "
            f"{t['es_index_cpu_s_per_chunk']:.4f} | {t['indexer_cpu_s_per_chunk']:.4f} | "
            f"{t['storer_cpu_s_per_chunk']:.4f} |"
        )
    return [*lines, "", *_plot("scale_cost")]


def _vectors(v: dict[str, Any]) -> list[str]:
    k = v.get("k", 100)
    lines = [
        f"### Vector index options at {v['vectors']:,} vectors",
        "",
        (
            f"| index_options | recall@10 | recall@{k} | off-heap bytes per vector (all files) | "
            "read by kNN search, bytes per vector | Elasticsearch CPU s per vector | index s |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, f in v.items():
        if isinstance(f, dict) and "recall_at_10" in f:
            mark = " (default)" if kind == v.get("default") else ""
            lines.append(
                f"| `{kind}`{mark} | {f['recall_at_10']:.4f} | {f.get(f'recall_at_{k}', 0):.4f} | "
                f"{f['off_heap_bytes_per_vector']:,.0f} | "
                f"{f['search_memory_bytes_per_vector']:,.0f} | "
                f"{f['index_es_cpu_s_per_vector']:.5f} | {f['index_seconds']:,.0f} |"
            )
    return [*lines, ""]


def _runs(r: dict[str, Any]) -> list[str]:
    return [
        f"### Runs search with {r['runs']:,} runs",
        "",
        "Server time (ms): p50 (lowest-highest per-round p50) / p99.",
        "",
        "| request | p50 / p99 |",
        "| --- | --- |",
        f"| text search, one word, 20 hits | {_latency(r, 'text')} |",
        f"| filters (model, status, latency, 30 days), newest first | {_latency(r, 'filters')} |",
        f"| dashboard: totals, by day, by model (7/30/90 days) | {_latency(r, 'dashboard')} |",
        "",
        (
            f"{r['runs_indexed']:,} runs indexed; stored in {r['store_s']:,.0f} s, indexed in "
            f"{r['index_s']:,.0f} s ({r['distinct_texts']:,} distinct texts embedded)."
        ),
        "",
    ]


def section(results: dict[str, Any]) -> list[str]:
    s = results.get("scale")
    if not s:
        return []
    c = s.get("corpus", {})
    upto = f" (to {s['max_chunks']:,} chunks)" if s.get("max_chunks") else ""
    lines = [
        f"## Scale: costs as the corpus grows{upto}",
        "",
        (
            f"{c.get('documents', 0):,} documents ({c.get('chunks_counted', 0):,} chunks as "
            f"MyAIServ's chunker counts them) from Debian's packages (below). "
            f"{c.get('queries', 0)} queries held out, e.g. "
            + "; ".join(f"\u201c{q}\u201d" for q in c.get("query_examples", [])[:4])
            + ". Headline keys (`scale.<size>.*`, `scale.ingest_chunks_per_s`, ...) come from "
            f"the {s.get('headline_topology', 'single')} topology; Elasticsearch heap "
            f"{c.get('es_heap', '?')} per node."
        ),
        "",
    ]
    lines += _corpus(c)
    if any(t in s for t in TOPOLOGIES):
        lines += _search(s)
        lines += _ingest(s)
        lines += _costs(s)
    else:
        lines += [
            (
                "Search, ingest and Elasticsearch costs by corpus size: not measured yet (the "
                "`single` and `cluster` stages of `make bench-scale` have not run)."
            ),
            "",
        ]
    if "vectors" in s:
        lines += _vectors(s["vectors"])
    if "runs" in s:
        lines += _runs(s["runs"])
    seconds = {k: v for k, v in (c.get("stage_seconds") or {}).items() if v}
    if seconds:
        lines += [
            "Stage times (s; each stage over all the runs it took; the corpus's when it was "
            "fetched, rendered and counted): "
            + ", ".join(f"{k} {v:,.0f}" for k, v in seconds.items()),
            "",
        ]
    how = get(results, "_method.scale.how") or ""
    return [*lines, f"How: {how}", ""]
