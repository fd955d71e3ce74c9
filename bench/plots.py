"""The report's plots (PNG, matplotlib), drawn from bench/results.json: ingest, relevance,
query latency, scaling, memory, open search contexts and the soak's series over time,
MyAIServ beside the limit and the peers (a figure measured over rounds drawn with its lowest
and highest round), and the scale benchmark's costs against the corpus size and its ingest
throughput over time. A plot whose figures are not there yet (its benchmark has not run) is
skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.spread import Spread

PEERS = {"langchain": "LangChain", "haystack": "Haystack"}
MODES = ("bm25", "vector", "hybrid")
OURS, LIMIT, PEER_COLOURS = "#1f77b4", "#7f7f7f", {"langchain": "#ff7f0e", "haystack": "#2ca02c"}


def get(results: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``peers.langchain.ingest.chunks_per_s``), or None."""
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def spread(results: dict[str, Any], path: str) -> Spread | None:
    """The figure at a dotted path with its rounds' spread (``..._min``, ``..._max``)."""
    parent, _, key = path.rpartition(".")
    return Spread.of(get(results, parent) if parent else results, key)


Bar = tuple[str, float | Spread, str]


def _bars(ax: Any, rows: list[Bar], unit: str, fmt: str = "{:.1f}") -> None:
    """Horizontal bars, first row on top, each labelled with its value; a figure with a
    spread over rounds gets a whisker from its lowest to its highest round."""
    ordered = rows[::-1]
    figures = [r[1] if isinstance(r[1], Spread) else Spread(r[1]) for r in ordered]
    values = [f.value for f in figures]
    below = [f.value - f.low if f.low is not None else 0.0 for f in figures]
    above = [f.high - f.value if f.high is not None else 0.0 for f in figures]
    bars = ax.barh(
        [r[0] for r in ordered],
        values,
        color=[r[2] for r in ordered],
        xerr=[below, above] if any(below) or any(above) else None,
        error_kw={"elinewidth": 1, "capsize": 2},
    )
    ax.bar_label(bars, labels=[fmt.format(v) for v in values], padding=3, fontsize=8)
    ax.set_xlabel(unit)
    ax.margins(x=0.18)


def ingest(results: dict[str, Any], ax: Any) -> bool:
    raw = spread(results, "ingest.raw_encode_chunks_per_s")
    ours = spread(results, "ingest.chunks_per_s")
    if raw is None or ours is None:
        return False
    backend = get(results, "ingest.backend") or "torch"
    rows: list[Bar] = [
        (f"raw encode, {backend} (limit)", raw, LIMIT),
        (f"MyAIServ, {backend} (API + indexer)", ours, OURS),
    ]
    theirs = spread(results, "peers.encode_onnx_int8.chunks_per_s")
    if theirs is not None:
        rows.append(("raw encode, onnx-int8, the peers' encoder", theirs, LIMIT))
    two = get(results, "scaling.ingest.workers_2_chunks_per_s")
    if two is not None:
        rows.append((f"MyAIServ, {backend}, 2 indexers", two, OURS))
    torch_raw = spread(results, "ingest.torch.raw_encode_chunks_per_s")
    torch = spread(results, "ingest.torch.chunks_per_s")
    if torch_raw is not None and torch is not None:
        rows.append(("raw encode, torch", torch_raw, LIMIT))
        rows.append(("MyAIServ, torch", torch, OURS))
    for section, label in (("ingest", "torch"), ("ingest_onnx_int8", "onnx-int8")):
        for peer, name in PEERS.items():
            value = spread(results, f"peers.{peer}.{section}.chunks_per_s")
            if value is not None:
                rows.append((f"{name}, {label}", value, PEER_COLOURS[peer]))
    _bars(ax, rows, "chunks/s (higher is better)")
    ax.axvline(0.85 * raw.value, color="black", linestyle="--", linewidth=1)
    ax.text(0.85 * raw.value, -0.6, " 85% of the limit", fontsize=8, va="top")
    ax.set_title("Ingest, CISI end to end (whiskers: lowest-highest round)")
    return True


def relevance(results: dict[str, Any], ax: Any) -> bool:
    systems = [("MyAIServ", "relevance.cisi", OURS)] + [
        (name, f"peers.{peer}.relevance.cisi", PEER_COLOURS[peer]) for peer, name in PEERS.items()
    ]
    systems = [s for s in systems if get(results, s[1]) is not None]
    if not systems or systems[0][0] != "MyAIServ":
        return False
    width = 0.8 / len(systems)
    for i, (name, path, colour) in enumerate(systems):
        values = [get(results, f"{path}.{mode}.ndcg@10") or 0.0 for mode in MODES]
        xs = [m + (i - (len(systems) - 1) / 2) * width for m in range(len(MODES))]
        bars = ax.bar(xs, values, width, label=name, color=colour)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(range(len(MODES)), MODES)
    ax.set_ylabel("nDCG@10 (higher is better)")
    ax.set_ylim(0, 0.55)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Relevance, CISI (76 judged queries)")
    return True


def latency(results: dict[str, Any], ax: Any) -> bool:
    s = results.get("search")
    if not s or "cached_p50_ms" not in s:
        return False
    rows: list[tuple[str, float, float, str]] = []
    for mode in MODES:
        if f"{mode}_uncached_p50_ms" in s:
            rows.append(
                (
                    f"MyAIServ {mode}, uncached",
                    s[f"{mode}_uncached_p50_ms"],
                    s[f"{mode}_uncached_p99_ms"],
                    OURS,
                )
            )
    rows.append(("MyAIServ hybrid, cached (server)", s["cached_p50_ms"], s["cached_p99_ms"], OURS))
    rows.append(("direct: encode + _msearch", s["direct_p50_ms"], s["direct_p99_ms"], LIMIT))
    for section, label in (("search", ""), ("search_onnx_int8", ", onnx-int8")):
        for peer, name in PEERS.items():
            for mode in MODES:
                p50 = get(results, f"peers.{peer}.{section}.{mode}_uncached_p50_ms")
                if p50 is not None:
                    p99 = get(results, f"peers.{peer}.{section}.{mode}_uncached_p99_ms")
                    rows.append((f"{name} {mode}{label}", p50, p99, PEER_COLOURS[peer]))
    rows.reverse()
    ys = range(len(rows))
    bars = ax.barh(ys, [r[1] for r in rows], color=[r[3] for r in rows], label="p50")
    ax.scatter([r[2] for r in rows], ys, marker="|", color="black", s=120, label="p99")
    ax.bar_label(bars, labels=[f"{r[1]:.1f}" for r in rows], padding=3, fontsize=7)
    ax.set_yticks(list(ys), [r[0] for r in rows], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("ms per query, k=10 (log scale; lower is better)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Query latency, one caller: p50 bars, p99 marks")
    return True


def scaling(results: dict[str, Any], axes: Any) -> bool:
    ing = get(results, "scaling.ingest")
    sea = get(results, "scaling.search")
    if not ing and not sea:
        return False
    if ing:
        _bars(
            axes[0],
            [
                ("1 indexer", ing["workers_1_chunks_per_s"], OURS),
                ("2 indexers", ing["workers_2_chunks_per_s"], OURS),
            ],
            "chunks/s",
        )
        axes[0].set_title("Ingest: indexer workers")
    if sea:
        for ax, kind in ((axes[1], "uncached"), (axes[2], "cached")):
            _bars(
                ax,
                [
                    ("1 instance", sea[f"{kind}_rps_1"], OURS),
                    ("3 instances", sea[f"{kind}_rps_3"], OURS),
                ],
                f"req/s, {sea['clients']} clients",
            )
            ax.set_title(f"Search {kind}: API instances")
    return True


def memory(results: dict[str, Any], ax: Any) -> bool:
    m = results.get("memory")
    if not m:
        return False
    rows: list[Bar] = []
    for key, label in (
        ("web_ingest_peak_rss_mb", "MyAIServ API, ingest"),
        ("web_search_peak_rss_mb", "MyAIServ API, search"),
        ("indexer_peak_rss_mb", "MyAIServ indexer"),
    ):
        value = Spread.of(m, key)
        if value is not None:
            rows.append((label, value, OURS))
    for peer, name in PEERS.items():
        for what in ("ingest", "search"):
            for suffix, label in (("", "torch"), ("_onnx_int8", "onnx-int8")):
                value = spread(results, f"peers.{peer}.memory.{what}{suffix}_peak_rss_mb")
                if value is not None:
                    rows.append((f"{name}, {what} process, {label}", value, PEER_COLOURS[peer]))
    _bars(ax, rows, "peak RSS, MB (lower is better)", "{:.0f}")
    ax.set_title("Memory")
    return True


def contexts(results: dict[str, Any], ax: Any) -> bool:
    """Open search contexts on the node over a sustained search run."""
    run = get(results, "search.sustained")
    if not run or not run.get("open_contexts_samples"):
        return False
    times, counts = zip(*run["open_contexts_samples"], strict=True)
    ax.plot(times, counts, color=OURS, linewidth=1)
    ax.set_ylim(bottom=0, top=max(10, max(counts) * 1.3))
    ax.set_xlabel("seconds")
    ax.set_ylabel("open search contexts\n(most per 5 s)")
    ax.set_title(
        f"Open search contexts, {run['searches_per_s']:.0f} distinct searches/s "
        f"({run['clients']} clients) while indexing"
    )
    return True


TOPOLOGY_STYLES = {"single": "-", "cluster": "--"}
TOPOLOGY_COLOURS = {"single": OURS, "cluster": "#ff7f0e"}
SCALE_MODES = {"bm25": "#2ca02c", "vector": "#d62728", "hybrid": OURS, "cached": "#9467bd",
               "direct": LIMIT}  # fmt: skip


def scale_rows(results: dict[str, Any], topology: str) -> list[dict[str, Any]]:
    """A topology's measuring points of the scale benchmark, smallest first."""
    t = get(results, f"scale.{topology}") or {}
    return [t[k] for k in sorted((k for k in t if k.isdigit()), key=int)]


def scale_search(results: dict[str, Any], ax: Any) -> bool:
    """p50 latency of each mode against the corpus size, single node and cluster."""
    drawn = False
    for topology, style in TOPOLOGY_STYLES.items():
        rows = scale_rows(results, topology)
        if not rows:
            continue
        for mode, colour in SCALE_MODES.items():
            xs = [r["chunks"] for r in rows if f"{mode}_p50_ms" in r]
            ys = [r[f"{mode}_p50_ms"] for r in rows if f"{mode}_p50_ms" in r]
            if xs:
                ax.plot(xs, ys, style, marker="o", color=colour, label=f"{mode}, {topology}")
                drawn = True
    if not drawn:
        return False
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chunks in the index (log)")
    ax.set_ylabel("p50 ms, one client (log)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Search latency as the corpus grows (cached: client time)")
    return True


def scale_cost(results: dict[str, Any], axes: Any) -> bool:
    """Elasticsearch's disk and heap, and the processes' peak RSS, against the size."""
    drawn = False
    for topology, style in TOPOLOGY_STYLES.items():
        t = get(results, f"scale.{topology}") or {}
        rows = scale_rows(results, topology)
        if not t or not rows:
            continue
        drawn = True
        xs = [r["chunks"] for r in rows]
        colour = TOPOLOGY_COLOURS[topology]
        axes[0].plot(xs, [r["es_disk_bytes"] / 2**20 for r in rows], style, marker="o",
                     color=colour, label=f"{topology}, all copies")  # fmt: skip
        heap = t.get("es_live_heap_bytes") or []
        axes[1].plot([c for c, _ in heap], [h / 2**20 for _, h in heap], style, marker=".",
                     color=colour, label=topology)  # fmt: skip
        axes[2].plot(xs, [r["api_peak_rss_mb"] for r in rows], style, marker="o",
                     color=colour, label=f"API, {topology}")  # fmt: skip
        if t.get("indexer_peak_rss_mb"):
            axes[2].axhline(t["indexer_peak_rss_mb"], linestyle=style, color=colour, alpha=0.5,
                            label=f"indexer (whole run), {topology}")  # fmt: skip
    if not drawn:
        return False
    for ax, title, unit in (
        (axes[0], "Index on disk", "MB"),
        (axes[1], "Elasticsearch live heap (all nodes)", "MB"),
        (axes[2], "Peak RSS (own VmHWM)", "MB"),
    ):
        ax.set_title(title, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("chunks")
        ax.set_ylabel(unit)
        ax.legend(fontsize=7)
    return True


def scale_ingest(results: dict[str, Any], ax: Any) -> bool:
    """Ingest throughput over the ingest clock (portions back to back, searches left out):
    end to end (the indexer's model's pace) solid, from cached vectors (chunks written)
    dotted."""
    drawn = False
    for topology, colour in TOPOLOGY_COLOURS.items():
        t = get(results, f"scale.{topology}") or {}
        for phase, label, style in (
            (0, "end to end (chunks embedded)", "-"),
            (1, "cached vectors (chunks written)", ":"),
        ):
            points = [(c / 60, r) for c, r, ph in t.get("throughput") or [] if ph == phase]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, style, marker=".", markersize=3, color=colour, linewidth=1,
                        label=f"{topology}, {label}")  # fmt: skip
                drawn = True
    if not drawn:
        return False
    ax.set_ylim(bottom=0)
    ax.set_xlabel("minutes of ingest")
    window = get(results, "scale.single.throughput_window_s") or 60
    ax.set_ylabel(f"chunks/s ({window:g} s windows)")
    ax.legend(fontsize=7)
    ax.set_title("Ingest throughput over the whole run")
    return True


def soak(results: dict[str, Any], axes: Any) -> bool:
    """The soak's series over time: memory per process (against its median over the
    second quarter, where growth is judged from), Elasticsearch's heap, open search
    contexts, Redis, the outbox, and p99 (p50 dashed) per request type."""
    series = get(results, "soak.series")
    if not series:
        return False

    def lines(ax: Any, prefix: str, label: str = "", relative: bool = False, **style: Any) -> None:
        for name, s in sorted(series.items()):
            if not name.startswith(prefix) or not s["points"]:
                continue
            times, values = zip(*s["points"], strict=True)
            if relative:
                values = tuple(100 * v / (s["q2_median"] or 1) for v in values)
            text = (label or name.removeprefix(prefix)) + (" (grows)" if s["grows"] else "")
            ax.plot([t / 60 for t in times], values, label=text, linewidth=1, **style)

    memory, heap, contexts, redis, backlog, latency = axes.flat
    lines(memory, "memory_mb.", relative=True)
    memory.set_ylabel("% of its second-quarter median")
    memory.set_title("Memory per process (PostgreSQL: PSS of all its processes)")
    lines(heap, "es_heap_after_gc_mb", "after the last GC")
    lines(heap, "es_heap_used_mb", "used")
    heap.set_ylim(bottom=0)
    heap.set_ylabel("MB")
    heap.set_title("Elasticsearch heap")
    lines(contexts, "es_open_contexts", "open search contexts")
    lines(contexts, "es_scrolls", "open scrolls")
    contexts.set_ylim(bottom=0, top=max(10, contexts.get_ylim()[1]))
    contexts.set_title("Elasticsearch: the most seen per window")
    lines(redis, "redis_used_mb", "used memory")
    redis.set_ylim(bottom=0)
    redis.set_ylabel("MB")
    bound = get(results, "soak.redis_maxmemory_mb")
    redis.set_title("Redis" + (f" (maxmemory {bound:,.0f} MB)" if bound else ""))
    lines(backlog, "outbox_backlog", "backlog (rows)")
    lines(backlog, "outbox_oldest_s", "oldest row (s)")
    backlog.set_ylim(bottom=0)
    backlog.set_title("Outbox")
    lines(latency, "p99_ms.")
    latency.set_prop_cycle(None)
    lines(latency, "p50_ms.", linestyle="--")
    for line in latency.get_lines():
        if line.get_linestyle() == "--":
            line.set_label(f"_{line.get_label()}")  # p50s: unlabelled, the p99's colour
    latency.set_yscale("log")
    latency.set_ylabel("ms (log scale)")
    latency.set_title("p99 per request type (p50 dashed), per window")
    for ax in axes.flat:
        ax.set_xlabel("minutes")
        ax.legend(fontsize=6, loc="upper left", ncol=2)
    return True


def render(results: dict[str, Any], folder: Path) -> list[Path]:
    """Draw every plot whose figures exist into ``folder``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw, shape in (
        ("ingest", ingest, (1, 1, (8, 3.2))),
        ("relevance", relevance, (1, 1, (8, 4))),
        ("latency", latency, (1, 1, (8, 5.5))),
        ("scaling", scaling, (1, 3, (12, 2.8))),
        ("memory", memory, (1, 1, (8, 3.4))),
        ("contexts", contexts, (1, 1, (8, 3))),
        ("scale_search", scale_search, (1, 1, (8, 4.5))),
        ("scale_cost", scale_cost, (1, 3, (13, 3.4))),
        ("scale_ingest", scale_ingest, (1, 1, (9, 3.4))),
        ("soak", soak, (3, 2, (12, 10))),
    ):
        rows, cols, size = shape
        fig, axes = plt.subplots(rows, cols, figsize=size, layout="constrained")
        try:
            if draw(results, axes):
                path = folder / f"{name}.png"
                # No timestamp in the file: a re-render of the same figures is the same file.
                fig.savefig(path, dpi=110, metadata={"Software": None})
                written.append(path)
        finally:
            plt.close(fig)
    return written
