"""The report's plots (PNG, matplotlib), drawn from bench/results.json: ingest, relevance,
query latency, scaling, memory and open search contexts, MyAIServ beside the limit and the
peers; a figure measured over rounds is drawn with its lowest and highest round. A plot
whose figures are not there yet (its benchmark has not run) is skipped."""

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
