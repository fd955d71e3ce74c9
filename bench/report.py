"""bench/results.json (machine-readable, merged by every benchmark), bench/REPORT.md
(rendered from it, for people), and the README's figures (its blocks between
``<!-- bench:NAME -->`` markers, rendered from the same results, so they never disagree).

It is long because it renders every benchmark's section: one small function each, in one
module so that every table reads the same way and every figure measured over rounds is
shown and compared by the same rule (``bench.spread``: a lead within the spread is a tie).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import growth_report, models_report, plots, sizing
from bench.spread import Spread, versus

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"
REPORT = BENCH / "REPORT.md"
PLOTS = BENCH / "plots"
README = BENCH.parent / "README.md"


def machine() -> dict[str, Any]:
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
    }


def load() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def save(
    section: str, figures: dict[str, Any], method: dict[str, Any], *, merge: bool = False
) -> dict[str, Any]:
    """Replace one section of results.json (or, with ``merge``, update the keys given and
    keep the rest: sections that several benchmarks fill), keep the others, and re-render
    the report and its plots."""
    results = load()
    if merge:
        results[section] = deep_merge(results.get(section, {}), figures)
        methods = results.setdefault("_method", {})
        methods[section] = deep_merge(methods.get(section, {}), method)
    else:
        results[section] = figures
        results.setdefault("_method", {})[section] = method
    results["_machine"] = machine()
    results["_updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    REPORT.write_text(render(results))
    if README.exists():
        README.write_text(with_readme_blocks(README.read_text(), results))
    plots.render(results, PLOTS)
    return results


PEERS, MODES, _get = plots.PEERS, plots.MODES, plots.get
# MyAIServ's relevance: hybrid with the default fusion (linear), and with reciprocal ranks.
OUR_MODES = (*MODES, "hybrid-rrf")


def _how(results: dict[str, Any], section: str, key: str = "how") -> str:
    return str(_get(results, f"_method.{section}.{key}") or "")


def _peers(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for peer, name in PEERS.items():
        p = _get(results, f"peers.{peer}")
        if isinstance(p, dict):
            out.append((peer, name, p))
    return out


# A peer's sections per embedding backend: their default (torch), and MyAIServ's own ONNX
# int8 file (``ingest_onnx_int8``, ``search_onnx_int8``...).
PEER_SUFFIX = {"torch": "", "onnx-int8": "_onnx_int8"}


def _peer_runs(p: dict[str, Any], section: str) -> list[tuple[str, dict[str, Any]]]:
    """(backend, figures) of a peer's ``section`` on each backend it ran on."""
    runs = []
    for backend, suffix in PEER_SUFFIX.items():
        f = p.get(f"{section}{suffix}")
        if isinstance(f, dict):
            runs.append((str(f.get("backend", backend)), f))
    return runs


def _ours_ingest(results: dict[str, Any], backend: str) -> dict[str, Any] | None:
    """MyAIServ's ingest figures on ``backend`` (its configured one, or torch)."""
    ing = results.get("ingest") or {}
    if ing.get("backend", "torch") == backend:
        return ing
    other = ing.get(backend)
    return other if isinstance(other, dict) else None


def _against(ours: Spread | None, theirs: Spread | None, *, higher_is_better: bool) -> str:
    """The cell that sets MyAIServ against a row: a lead within the spread is a tie."""
    if ours is None or theirs is None:
        return ""
    verdict, text = versus(ours, theirs, higher_is_better=higher_is_better)
    return text if verdict == "tie" else f"MyAIServ {text}"


def _backend(f: dict[str, Any]) -> str:
    """A row's embedding backend, with its threads where recorded."""
    backend = str(f.get("backend", ""))
    return f"{backend}, {f['threads']} threads" if "threads" in f else backend


def _ingest_target(results: dict[str, Any]) -> tuple[str, str, bool] | None:
    """MyAIServ's ingest against each peer's on the same backend: its configured one
    where the peers ran on it too, else torch."""
    ing = results.get("ingest") or {}
    peers = _peers(results)
    for backend in dict.fromkeys([str(ing.get("backend", "torch")), "torch"]):
        ours = Spread.of(_ours_ingest(results, backend), "chunks_per_s")
        theirs = {
            name: spread
            for _, name, p in peers
            if (spread := Spread.of(dict(_peer_runs(p, "ingest")).get(backend), "chunks_per_s"))
        }
        if ours is not None and peers and len(theirs) == len(peers):
            break
    else:
        return None
    parts, met = [], True
    for name, spread in theirs.items():
        verdict, text = versus(ours, spread, higher_is_better=True)
        met = met and verdict == "ahead"
        parts.append(f"{name} {spread.cell()}: {text}")
    measured = f"{ours.cell()} chunks/s vs " + "; ".join(parts)
    defaults = {name: Spread.of(p.get("ingest"), "chunks_per_s") for _, name, p in peers}
    if backend != "torch" and all(defaults.values()):
        measured += (
            " (the peers on their default, torch: "
            + ", ".join(f"{name} {d.cell()}" for name, d in defaults.items() if d)
            + ")"
        )
    return (f"ingest ahead of both peers on the same backend ({backend})", measured, met)


def _relevance_variants(
    results: dict[str, Any],
) -> list[tuple[str, str, dict[str, Any], str]]:
    """(peer, name, CISI figures per retriever, label) of every way the peers ran: their
    defaults, on MyAIServ's ONNX int8 file, with the best analyzer the cluster offers."""
    out = []
    for peer, name, p in _peers(results):
        for section in ("relevance", "relevance_onnx_int8", "relevance_best_analyzer"):
            f = p.get(section) or {}
            label = {
                "relevance_onnx_int8": ", onnx-int8",
                "relevance_best_analyzer": f", analyzer: {f.get('analyzer')}",
            }.get(section, "")
            if isinstance(f.get("cisi"), dict):
                out.append((peer, name, f["cisi"], label))
    return out


def _plot(name: str) -> list[str]:
    return [f"![{name}](plots/{name}.png)", ""] if (PLOTS / f"{name}.png").exists() else []


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, what was measured, met) for every target whose figures exist."""
    out: list[tuple[str, str, bool]] = []
    ing = results.get("ingest", {})
    if "ratio_to_raw_encode" in ing:
        r = ing["ratio_to_raw_encode"]
        on = f" on {ing['backend']}" if "backend" in ing else ""
        out.append((f"ingest >= 85% of raw encode{on}", f"{r:.1%}", r >= 0.85))
    ingest_target = _ingest_target(results)
    if ingest_target:
        out.append(ingest_target)
    real = Spread.of(ing.get("real_docs"), "ratio_to_raw_encode")
    if real:
        out.append(
            (
                "real documents: `myaiserv ingest` beside `make run` >= 85% of raw encode",
                real.cell("{:.1%}"),
                real.value >= 0.85,
            )
        )
    ours = _get(results, "relevance.cisi.hybrid.ndcg@10")
    theirs = {
        f"{name}{label} {mode}": m["ndcg@10"]
        for _, name, variant, label in _relevance_variants(results)
        for mode, m in variant.items()
        if mode in MODES
    }
    if ours is not None and theirs:
        best = max(theirs, key=lambda k: theirs[k])
        out.append(
            (
                "hybrid nDCG@10 ahead of every peer retriever",
                f"{ours:.4f} vs best peer ({best}) {theirs[best]:.4f}",
                all(ours > v for v in theirs.values()),
            )
        )
    s = results.get("search", {})
    if "uncached_to_direct_p50" in s:
        r = s["uncached_to_direct_p50"]
        out.append(("uncached search p50 <= 1.5x the direct client", f"{r:.2f}x", r <= 1.5))
    if "cached_p50_ms" in s:
        v = s["cached_p50_ms"]
        out.append(("cached search p50 <= 5 ms server time", f"{v:.2f} ms", v <= 5))
    t = results.get("tracing", {})
    if "overhead_ratio" in t:
        v = t["overhead_ratio"]
        spread = f"{t['overhead_ratio_ratio_1_min']:+.1%} to {t['overhead_ratio_ratio_1_max']:+.1%}"
        out.append(
            (
                "tracing at ratio 1.0 adds <= 5% to uncached search p50",
                f"{v:+.1%} (rounds {spread})",
                v <= 0.05,
            )
        )
    return out


def why_missed(results: dict[str, Any]) -> list[str]:
    """Why the missed targets were missed, from the run's own figures."""
    out = []
    ing = results.get("ingest", {})
    if ing.get("ratio_to_raw_encode", 1) < 0.85:
        # The ratio is the rounds' median of (raw encode time / end-to-end time), each
        # round against its own raw encode (the machine's speed drifts between rounds).
        encode_s = ing["ratio_to_raw_encode"] * ing["seconds"]
        cores = _get(results, "_machine.cores") or "the same"
        out.append(
            f"Ingest vs raw encode: at the raw rate, encoding the {ing['chunks']} chunks "
            f"takes {encode_s:.1f} s of the {ing['seconds']:.1f} s end to end. The other "
            f"{ing['seconds'] - encode_s:.1f} s is work the raw encode does not do, on "
            f"{cores} cores shared with it: the API writing the documents and their "
            "outbox rows to PostgreSQL, the indexer claiming them and chunking with token "
            "counts, building and sending the bulk requests, and Elasticsearch parsing and "
            "indexing the vectors. The faster the encoder, the larger that share"
            + (
                f": on torch, MyAIServ reaches {ing['torch']['ratio_to_raw_encode']:.1%} of "
                "its raw encode."
                if "torch" in ing
                else "."
            )
        )
    ahead = _ingest_target(results)
    if ahead and not ahead[2]:
        backend = ahead[0].rsplit("(", 1)[-1].rstrip(")")
        ours = _ours_ingest(results, backend) or {}
        shares = ", ".join(
            f"{name} {f['ratio_to_raw_encode']:.1%}"
            for _, name, p in _peers(results)
            if "ratio_to_raw_encode" in (f := dict(_peer_runs(p, "ingest")).get(backend) or {})
        )
        why = (
            f"Ingest vs the peers on {backend}: end to end, MyAIServ reaches "
            f"{ours.get('ratio_to_raw_encode', 0):.1%} of its raw encode, the peers "
            f"{shares or '?'} of theirs."
        )
        encoders = _encoders(results) if backend == "onnx-int8" else None
        if encoders:
            why += f" {encoders}"
        if "tie (" in ahead[1]:
            why += (
                " A lead within the rounds' spread counts as a tie: more rounds "
                "(BENCH_ROUNDS) on a quiet machine narrow the spread."
            )
        out.append(why)
    s = results.get("search", {})
    if s.get("uncached_to_direct_p50", 0) > 1.5:
        client, server = s["hybrid_uncached_p50_ms"], s.get("hybrid_uncached_server_p50_ms")
        direct = s["direct_p50_ms"]
        out.append(
            f"Uncached search vs the direct client: {client:.1f} ms against {direct:.1f} ms "
            f"(p50s). The {client - direct:.1f} ms more is what the direct client skips"
            + (f": {client - server:.1f} ms of HTTP on loopback, and" if server else ":")
            + " in the server, the key's authentication, the embedding cache lookup and write, "
            "fusing the two lists, building the hits and highlights, and writing the page to "
            "the result cache, in Python on the same cores as the embedding model and "
            "Elasticsearch."
        )
    return out


def _targets(results: dict[str, Any]) -> list[str]:
    rows = targets(results)
    if not rows:
        return []
    lines = ["## Targets", "", "| target | measured | |", "| --- | --- | --- |"]
    lines += [f"| {t} | {v} | {'met' if ok else '**missed**'} |" for t, v, ok in rows]
    lines.append("")
    lines += [f"- {reason}" for reason in why_missed(results)]
    return [*lines, ""] if lines[-1] else lines


def _ingest(results: dict[str, Any]) -> list[str]:
    r = results.get("ingest")
    if not r:
        return []
    backend = r.get("backend", "torch")
    torch = r.get("torch")
    lines = [
        "## Ingest (CISI, end to end)",
        "",
        (
            f"{r['documents']} documents, {r['chunks']} chunks, median of {r['rounds']} rounds "
            "(lowest-highest round in brackets). Each system's share is of the raw encode on "
            "its own embedding backend; the last column sets MyAIServ, on the row's backend, "
            "against the row (a lead within the rounds' spread is a tie)."
        ),
        "",
        (
            "| system | backend | chunks/s | docs/s | seconds | of raw encode | "
            "MyAIServ on the same backend |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, f, key in (
        ("raw encode, MyAIServ's embedder (its limit)", r, "raw_encode_chunks_per_s"),
        (
            "raw encode, sentence-transformers = MyAIServ's torch backend (the limit)",
            {"backend": "torch", **(torch or {})},
            "raw_encode_chunks_per_s",
        ),
        (
            "raw encode, sentence-transformers' ONNX backend (the peers' limit)",
            _get(results, "peers.encode_onnx_int8"),
            "chunks_per_s",
        ),
    ):
        raw = Spread.of(f, key)
        if raw:
            lines.append(f"| {name} | {_backend(f)} | {raw.cell()} | | | 100% | |")

    def row(name: str, f: dict[str, Any], on: str, against: str = "") -> str:
        ratio = ""
        if "ratio_to_raw_encode" in f:
            spread = Spread(f["ratio_to_raw_encode"], f.get("ratio_min"), f.get("ratio_max"))
            ratio = spread.cell("{:.1%}")
        cps = Spread.of(f, "chunks_per_s")
        return (
            f"| {name} | {_backend({'backend': on, **f})} | {cps.cell() if cps else ''} | "
            f"{f['docs_per_s']:.1f} | {f['seconds']:.1f} | {ratio} | {against} |"
        )

    lines.append(row("MyAIServ: API + 1 indexer", r, backend))
    if torch:
        lines.append(row("MyAIServ: API + 1 indexer", torch, "torch"))
    for _, name, p in _peers(results):
        for on, f in _peer_runs(p, "ingest"):
            ours = Spread.of(_ours_ingest(results, on), "chunks_per_s")
            theirs = Spread.of(f, "chunks_per_s")
            lines.append(row(name, f, on, _against(ours, theirs, higher_is_better=True)))
    encoders = _encoders(results)
    return [
        *lines,
        "",
        *([encoders, ""] if encoders else []),
        *_plot("ingest"),
        f"How: {_how(results, 'ingest')}",
        "",
    ]


def _real_docs(results: dict[str, Any]) -> list[str]:
    r = _get(results, "ingest.real_docs")
    if not r:
        return []
    cells = {
        key: spread.cell(fmt)
        for key, fmt in (
            ("chunks_per_s", "{:.1f}"),
            ("tokens_per_s", "{:.0f}"),
            ("raw_encode_chunks_per_s", "{:.1f}"),
            ("raw_encode_tokens_per_s", "{:.0f}"),
            ("ratio_to_raw_encode", "{:.1%}"),
        )
        if (spread := Spread.of(r, key))
    }
    return [
        "## Real documents beside `make run`",
        "",
        (
            f"{r['documents']:,} pages of {r['package']} ({r['chunks']:,} chunks, "
            f"{r['tokens']:,} tokens), median of {r['rounds']} rounds (lowest-highest round). "
            "The ingest leaves the embedding to the running indexer and follows it; the raw "
            "encode is MyAIServ's embedder alone on the same chunks."
        ),
        "",
        "| | chunks/s | tokens/s | of raw encode |",
        "| --- | --- | --- | --- |",
        (
            f"| `myaiserv ingest` beside `make run` | {cells.get('chunks_per_s', '')} | "
            f"{cells.get('tokens_per_s', '')} | {cells.get('ratio_to_raw_encode', '')} |"
        ),
        (
            f"| raw encode, same chunks and backend | {cells.get('raw_encode_chunks_per_s', '')} "
            f"| {cells.get('raw_encode_tokens_per_s', '')} | 100% |"
        ),
        "",
        f"How: {_how(results, 'ingest', 'how_real_docs')}",
        "",
    ]


def _encoders(results: dict[str, Any]) -> str | None:
    """The two encoders of the same ONNX int8 file with the same threads: what bounds
    MyAIServ's ingest on it, and what bounds the peers'."""
    ours = Spread.of(_ours_ingest(results, "onnx-int8"), "raw_encode_chunks_per_s")
    st = _get(results, "peers.encode_onnx_int8")
    theirs = Spread.of(st, "chunks_per_s")
    if ours is None or theirs is None:
        return None
    verdict, text = versus(ours, theirs, higher_is_better=True)
    who = "the two encoders" if verdict == "tie" else "MyAIServ's encoder"
    return (
        f"Same ONNX int8 file, same threads ({st.get('threads', '?')}): MyAIServ's runtime "
        f"encodes {ours.cell()} chunks/s, sentence-transformers' ONNX backend (what both "
        f"peers call) {theirs.cell()}: {who} {text}. sentence-transformers "
        f"runs batches of {st.get('batch_size', '?')} texts padded to the longest (sorted by "
        "length, so little padding), each ONNX Runtime operation split across the threads; "
        "MyAIServ's runtime (myaiserv/embeddings/runtime.py) runs whole texts side by side, "
        "one thread each, unpadded: a single text's matrices are too small to share out."
    )


def _relevance(results: dict[str, Any]) -> list[str]:
    r = results.get("relevance")
    if not r:
        return []
    lines = [
        "## Relevance (CISI)",
        "",
        f"{r.get('queries', '?')} judged queries; every system retrieves over the same chunks.",
        "",
        "| system | retriever | nDCG@10 | MAP | Recall@100 |",
        "| --- | --- | --- | --- | --- |",
    ]
    systems = [("MyAIServ", r.get("cisi", {}))] + [
        (f"{name}{label}", modes) for _, name, modes, label in _relevance_variants(results)
    ]
    for name, modes in systems:
        for mode in OUR_MODES:
            m = modes.get(mode)
            if m:
                lines.append(
                    f"| {name} | {mode} | {m['ndcg@10']:.4f} | {m['map']:.4f} | "
                    f"{m['recall@100']:.4f} |"
                )
    notes = [f"- {name}: {n}" for _, name, p in _peers(results) for n in p.get("notes", [])]
    why = _get(results, "peers.best_analyzer.why")
    if why:
        notes.append(f"- The peers' analyzer: {why}")
    return [
        *lines,
        "",
        *_plot("relevance"),
        *([*notes, ""] if notes else []),
        f"How (MyAIServ): {_how(results, 'relevance')}",
        "",
        f"How (peers): {_how(results, 'peers')}",
        "",
    ]


def _search(results: dict[str, Any]) -> list[str]:
    r = results.get("search")
    if not r or "concurrency" not in r:
        return []
    conc = r["concurrency"]
    # The search benchmark runs on the configured backend, as the ingest one does.
    ours_backend = r.get("backend") or _get(results, "ingest.backend") or ""
    lines = [
        "## Query latency and throughput (CISI queries, k=10)",
        "",
        (
            f"Median of {r.get('rounds', 1)} rounds (lowest-highest round in brackets). The "
            "last column sets MyAIServ's p50 in the same mode (through its HTTP API, uncached) "
            "against the row's p50 (a peer called in-process); a lead within the rounds' "
            "spread is a tie."
        ),
        "",
        (
            f"| system | backend | p50 ms | p99 ms | req/s, 1 client | req/s, {conc} clients | "
            "MyAIServ, same mode, p50 |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cells(f: dict[str, Any], prefix: str) -> str:
        spreads = [Spread.of(f, f"{prefix}_{k}") for k in ("p50_ms", "p99_ms", "rps_1")]
        return " | ".join(s.cell() if s else "" for s in spreads)

    for mode in MODES:
        if f"{mode}_uncached_p50_ms" in r:
            load = f"{r['hybrid_uncached_rps']:.1f}" if mode == "hybrid" else ""
            lines.append(
                f"| MyAIServ `/v1/search` {mode}, uncached | {ours_backend} | "
                f"{cells(r, f'{mode}_uncached')} | {load} | |"
            )
    direct = [Spread.of(r, f"direct_{k}") for k in ("p50_ms", "p99_ms")]
    lines += [
        (
            f"| MyAIServ hybrid, cached (server time; client {r['cached_client_p50_ms']:.2f}) | "
            f"{ours_backend} | {r['cached_p50_ms']:.2f} | {r['cached_p99_ms']:.2f} | | "
            f"{r['cached_rps']:.1f} | |"
        ),
        (
            "| direct: encode + elasticsearch-py `_msearch` (the limit) | "
            f"{ours_backend} | {' | '.join(d.cell() if d else '' for d in direct)} | | | |"
        ),
    ]
    for _, name, p in _peers(results):
        for on, s in _peer_runs(p, "search"):
            for mode in MODES:
                if f"{mode}_uncached_p50_ms" in s:
                    against = _against(
                        Spread.of(r, f"{mode}_uncached_p50_ms"),
                        Spread.of(s, f"{mode}_uncached_p50_ms"),
                        higher_is_better=False,
                    )
                    lines.append(
                        f"| {name} {mode} retriever, in-process | {_backend({'backend': on, **s})}"
                        f" | {cells(s, f'{mode}_uncached')} | | {against} |"
                    )
    ratio = Spread.of(r, "uncached_to_direct_p50")
    return [
        *lines,
        "",
        (
            "MyAIServ hybrid uncached, server time p50: "
            f"{r['hybrid_uncached_server_p50_ms']:.1f} ms; "
            f"uncached p50 / direct p50 = {ratio.cell('{:.2f}') if ratio else ''}."
        ),
        "",
        *_plot("latency"),
        f"How: {_how(results, 'search')}",
        "",
    ]


def _sustained(results: dict[str, Any]) -> list[str]:
    r = _get(results, "search.sustained")
    if not r:
        return []
    return [
        "## Sustained search: open search contexts",
        "",
        (
            "| duration s | clients | searches | searches/s | pages followed | writes | errors | "
            "p50 ms | p99 ms | open contexts: max | mean | after |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        (
            f"| {r['duration_s']:.0f} | {r['clients']} | {r['searches']} | "
            f"{r['searches_per_s']:.1f} | {r['pages_followed']} | {r['writes']} | "
            f"{r['errors']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{r['open_contexts_max']} | {r['open_contexts_mean']:.1f} | "
            f"{r['open_contexts_after']} |"
        ),
        "",
        *_plot("contexts"),
        f"How: {_how(results, 'search', 'how_sustained')}",
        "",
    ]


def _scaling(results: dict[str, Any]) -> list[str]:
    r = results.get("scaling")
    if not r:
        return []
    lines = ["## Scaling", "", "| what | 1 | more | factor |", "| --- | --- | --- | --- |"]
    ing, sea = r.get("ingest"), r.get("search")
    if ing:
        lines.append(
            f"| ingest chunks/s, 1 vs 2 indexer workers | {ing['workers_1_chunks_per_s']:.1f} | "
            f"{ing['workers_2_chunks_per_s']:.1f} | {ing['factor']:.2f} |"
        )
    if sea:
        for kind in ("uncached", "cached"):
            lines.append(
                f"| `/v1/search` {kind} req/s ({sea['clients']} clients), 1 vs 3 API instances "
                f"| {sea[f'{kind}_rps_1']:.1f} | {sea[f'{kind}_rps_3']:.1f} | "
                f"{sea[f'{kind}_factor']:.2f} |"
            )
    lines += ["", *_plot("scaling")]
    if ing:
        lines += [
            (
                "How (ingest): as in Ingest, with two indexer processes; that run is the last "
                "step of each ingest round."
            ),
            "",
        ]
    if sea:
        lines += [f"How (search): {_how(results, 'scaling', 'how_search')}", ""]
    return lines


def _memory(results: dict[str, Any]) -> list[str]:
    m = results.get("memory")
    if not m:
        return []
    lines = [
        "## Memory (peak RSS)",
        "",
        (
            "Every process's own VmHWM: the median of the rounds (lowest-highest in "
            "brackets), one figure where one process served every round. The last column "
            "sets MyAIServ's process for the same job on the same backend against the row "
            "(a lead within the rounds' spread is a tie)."
        ),
        "",
        "| process | backend | MB | MyAIServ, same job and backend |",
        "| --- | --- | --- | --- |",
    ]
    ingest_backend = _get(results, "ingest.backend") or ""
    search_backend = _get(results, "search.backend") or ingest_backend
    ours = {
        "ingest": ("indexer_peak_rss_mb", ingest_backend, "the indexer"),
        "search": ("web_search_peak_rss_mb", search_backend, "the API instance"),
    }
    for key, label, backend in (
        ("web_ingest_peak_rss_mb", "MyAIServ API instance, during ingest", ingest_backend),
        ("web_search_peak_rss_mb", "MyAIServ API instance, during the search benchmark",
         search_backend),
        ("indexer_peak_rss_mb", "MyAIServ indexer worker, during ingest", ingest_backend),
    ):  # fmt: skip
        spread = Spread.of(m, key)
        if spread:
            lines.append(f"| {label} | {backend} | {spread.cell('{:.0f}')} | |")
    for _, name, p in _peers(results):
        for job in ("ingest", "search"):
            for on, suffix in PEER_SUFFIX.items():
                theirs = Spread.of(p.get("memory"), f"{job}{suffix}_peak_rss_mb")
                if theirs is None:
                    continue
                key, backend, process = ours[job]
                against = ""
                if on == backend:
                    text = _against(Spread.of(m, key), theirs, higher_is_better=False)
                    against = f"{text} ({process})" if text else ""
                lines.append(
                    f"| {name} process, {job} | {on} | {theirs.cell('{:.0f}')} | {against} |"
                )
    how = " ".join(v for v in (_get(results, "_method.memory") or {}).values())
    return [*lines, "", *_plot("memory"), f"How: {how}", ""]


def _vectors(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    k = r.get("k", 100)
    lines = [
        "## Vector index options",
        "",
        (
            f"{r.get('chunks', '?')} CISI chunks, {r.get('queries', '?')} queries; MyAIServ "
            f"creates its indices with `{r.get('default', '?')}` "
            "(`MYAISERV_ES__VECTOR_INDEX_TYPE`)."
        ),
        "",
        (
            f"| index_options | recall@10 | recall@{k} | Elasticsearch CPU s to index | "
            "shard indexing ms |"
        ),
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, f in r.items():
        if isinstance(f, dict) and "recall_at_10" in f:
            mark = " (default)" if kind == r.get("default") else ""
            lines.append(
                f"| `{kind}`{mark} | {f['recall_at_10']:.4f} | {f.get(f'recall_at_{k}', 0):.4f} "
                f"| {f['index_es_cpu_s']:.2f} | {f['shard_indexing_ms']:.0f} |"
            )
    return [*lines, "", f"How: {method.get('how', '')}", ""]


def _load(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    lines = [
        "## Load (locust, read/write mix, loopback)",
        "",
        f"{r['users']} users, {r['duration_s']} s per run; search 6 : write 2 : read 1 : chat 1.",
        "",
        (
            "| instances | req/s | p50 ms | p99 ms | errors (non-429) | 429 | acknowledged "
            "writes | stored | indexed | lost | backlog indexed after (s) |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in r["runs"].values():
        lines.append(
            f"| {run['instances']} | {run['rps']:.1f} | {run['p50_ms']:.0f} | "
            f"{run['p99_ms']:.0f} | {run['errors']} | {run['rate_limited_429']} | "
            f"{run['acknowledged_writes']} | {run['stored_writes']} | {run['indexed_writes']} | "
            f"{run['lost_writes']} | {run.get('backlog_indexed_after_load_s', '')} |"
        )
    return [*lines, "", f"How: {method.get('how', '')}", ""]


def _reliability(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    if "faults_detail" not in r:  # only bench.hangs has run (its own section: _hangs)
        return []
    lines = [
        "## Faults under load",
        "",
        (
            "| dependency stopped | requests | answers during the outage | unexpected answers | "
            "recovered | survived |"
        ),
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in r["faults_detail"]:
        during = ", ".join(f"{k}: {v}" for k, v in f["during_outage"].items())
        lines.append(
            f"| {f['dependency']} ({f['outage_s']:g} s) | {f['requests']} | {during} | "
            f"{f['unexpected_answers']} | {f['recovered']} | {f['survived']} |"
        )
    lines += [
        "",
        (
            f"Acknowledged writes {r['acknowledged_writes']}, in PostgreSQL {r['stored_writes']}, "
            f"searchable {r['indexed_writes']}, lost {r['lost_writes']}."
        ),
        "",
        f"How: {method.get('how', '')}",
        "",
    ]
    return lines


def _failover(results: dict[str, Any]) -> list[str]:
    r = results.get("reliability", {})
    if "redis_failover_s" not in r:
        return []
    d = r["redis_failover_detail"]
    answers = ", ".join(f"{k}: {v}" for k, v in d["answers"].items())
    return [
        "## Redis failover under load",
        "",
        "| SIGKILL of the primary to | median | max |",
        "| --- | --- | --- |",
        (
            f"| Sentinel naming the promoted replica | {r['redis_failover_switch_s']:.2f} s | "
            f"{max(d['switch_s']):.2f} s |"
        ),
        (
            f"| the API counting a request on it | {r['redis_failover_s']:.2f} s | "
            f"{r['redis_failover_max_s']:.2f} s |"
        ),
        "",
        (
            f"{d['rounds']} failovers, {d['requests']} requests ({answers}); acknowledged writes "
            f"{d['acknowledged_writes']}, lost {d['lost_writes']}; answers outside the designed "
            f"ones: {r['redis_failover_errors']}."
        ),
        "",
        f"How: {_how(results, 'reliability', 'redis_failover_how')}",
        "",
    ]


def _hangs(results: dict[str, Any]) -> list[str]:
    hangs = _get(results, "reliability.hang") or {}
    deps = [d for d in ("redis", "elasticsearch", "postgres") if d in hangs]
    if not deps:
        return []
    lines = [
        "## Hung dependencies under load",
        "",
        (
            "| dependency hung | p50 during, ms | p99 during, ms | longest request, ms | "
            "answers during the hang | unexpected answers | breaker opened | recovered in, s |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dep in deps:
        h = hangs[dep]
        during = ", ".join(f"{k}: {v}" for k, v in h["answers_during_hang"].items())
        lines.append(
            f"| {dep} ({h['hang_s']:g} s) | {h['p50_ms']:.0f} | {h['p99_ms']:.0f} | "
            f"{h['max_ms']:.0f} | {during} | "
            f"{h['unexpected_answers'] + h['503_without_retry_after']} | "
            f"{h['breaker_opened']} | {h['recovered_s']:g} |"
        )
    how = _get(results, "_method.reliability.hang.how") or ""
    return [
        *lines,
        "",
        f"Acknowledged writes {hangs['acknowledged_writes']}, lost {hangs['lost_writes']}.",
        "",
        f"How: {how}",
        "",
    ]


def _security(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    return [
        "## Security",
        "",
        "| check | tried | failures |",
        "| --- | --- | --- |",
        (
            f"| schemathesis (OpenAPI, authenticated) | {r['schemathesis_cases']} cases | "
            f"{r['schemathesis_5xx']} 5xx, {sum(r['schemathesis_failures'].values())} in all |"
        ),
        (
            f"| hostile inputs (every text field, raw bodies, headers) | "
            f"{r['hostile_inputs_tried']} | {len(r['hostile_input_failures'])} |"
        ),
        (
            f"| cross-tenant sweep (two tenants, identical data) | {r['cross_tenant_checks']} "
            f"checks | {r['cross_tenant_leaks']} leaks |"
        ),
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _section(name: str, renderer: Any) -> Any:
    """An older renderer (its own section's figures and method) as a whole-results one."""

    def render_section(results: dict[str, Any]) -> list[str]:
        if name not in results:
            return []
        return renderer(results[name], _get(results, f"_method.{name}") or {})

    return render_section


def _console(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    def row(page: str, prefix: str, call: str, api: str) -> list[str]:
        def cell(p: str) -> str:
            return (
                f"{r[f'{p}_p50_ms']:.1f} ({r[f'{p}_p50_min_ms']:.1f}-{r[f'{p}_p50_max_ms']:.1f})"
                f" | {r[f'{p}_p99_ms']:.1f}"
            )

        return [f"| {page} | {cell(prefix)} | {call} | {cell(api)} |"]

    return [
        "## Console",
        "",
        (
            f"Server time (ms) of each console page beside the API call it makes, with "
            f"{r['runs_stored']:,} runs and {r['documents_stored']:,} documents stored: p50 "
            "(lowest-highest per-round p50) and p99."
        ),
        "",
        "| page | p50 | p99 | API call | p50 | p99 |",
        "| --- | --- | --- | --- | --- | --- |",
        *row("runs search", "runs", "POST /v1/runs/search", "runs_api"),
        *row("documents search", "documents", "POST /v1/search", "documents_api"),
        "",
        (
            f"The page costs {r['runs_overhead_p50_ms']:.1f} ms (runs) and "
            f"{r['documents_overhead_p50_ms']:.1f} ms (documents) more than its API call at "
            "p50: the template render and the session lookup."
        ),
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _topology(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    def span(key: str) -> str:
        s = r[f"{key}_range"]
        return f"{s['median']:.0f} s ({s['min']:.0f}-{s['max']:.0f})"

    return [
        "## Production topology",
        "",
        (
            f"docker-compose.yml with `--scale web=3` on {r['engine']} ({r['boot_rounds']} "
            f"boots, {r['rounds']} rounds of each disturbance), measured through nginx."
        ),
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| boot, empty volumes, to `/ready` 200 (images built) | {span('boot_s')} |",
        f"| boot, volumes kept | {span('boot_restart_s')} |",
        f"| app image | {r['image_mb']:,} MB |",
        (
            f"| failed requests, scaling web 3 -> 5 | {r['scale_3_to_5_failed_requests']} of "
            f"{r['scale_3_to_5_requests']:,} |"
        ),
        (
            f"| failed requests, scaling web 5 -> 3 | {r['scale_5_to_3_failed_requests']} of "
            f"{r['scale_5_to_3_requests']:,} |"
        ),
        (
            f"| failed searches, one Elasticsearch node stopped for 20 s | "
            f"{r['es_node_loss_failed_searches']} of {r['es_node_loss_searches']:,} |"
        ),
        (
            f"| Redis primary stopped: app ready again (Sentinel switch) | "
            f"{r['redis_failover_s']:.1f} s, max {r['redis_failover_max_s']:.1f} s "
            f"({r['redis_failover_switch_s']:.1f} s) |"
        ),
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _tracing(r: dict[str, Any], method: dict[str, Any]) -> list[str]:
    def row(label: str, name: str) -> str:
        p50 = f"{r[f'{name}_p50_ms']:.2f} | {r[f'{name}_server_p50_ms']:.2f}"
        cpu = f"{r[f'{name}_cpu_ms_per_request']:.2f}"
        if name == "off":
            return f"| {label} | {p50} | - | {cpu} | - | - |"
        overhead = (
            f"{r[f'overhead_ratio_{name}']:+.1%} ({r[f'overhead_ratio_{name}_min']:+.1%} to "
            f"{r[f'overhead_ratio_{name}_max']:+.1%})"
        )
        cpu_overhead = f"{cpu} | {r[f'cpu_overhead_ratio_{name}']:+.1%}"
        traces = f"{r[f'traces_{name}']:,} of {r['requests_per_variant']:,}"
        return f"| {label} | {p50} | {overhead} | {cpu_overhead} | {traces} |"

    return [
        "## Tracing overhead",
        "",
        (
            f"Uncached hybrid search, {r['queries']} CISI queries x {r['rounds']} rounds per "
            "variant, interleaved: p50 (ms) and its change against tracing off "
            "(lowest-highest per round); the API process's CPU time per search (ms) and its "
            "change; the searches Zipkin holds a trace of. Zipkin, on the same machine, used "
            f"{r['zipkin_cpu_ms_per_trace']:.2f} ms of CPU per trace it received."
        ),
        "",
        (
            "| tracing | client p50 | server p50 | p50 change | CPU per search | CPU change "
            "| traces in Zipkin |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
        row("off", "off"),
        row("on, sample ratio 1.0", "ratio_1"),
        row("on, sample ratio 0.1", "ratio_0_1"),
        "",
        f"How: {method.get('how', '')}",
        "",
    ]


def _soak(results: dict[str, Any]) -> list[str]:
    r = results.get("soak")
    if not r or "series" not in r:
        return []
    c = r["reconciliation"]
    by_status = ", ".join(f"{k}: {v}" for k, v in r["errors_by_status"].items())
    growing = ", ".join(f"`{name}`" for name in r["growing"]) or "none"

    def num(v: Any) -> str:
        return "" if v is None else f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"

    lines = [
        "## Soak",
        "",
        (
            f"{r['duration_s']:.0f} s of mixed load, {r['users']} users against "
            f"{r['instances']} API instances behind nginx and {r['indexers']} indexers: "
            f"{r['requests']:,} requests ({r['requests_per_s']:.1f}/s), sampled every "
            f"{r['sample_s']:g} s. Errors (any answer but a 2xx or a 429, or none): "
            f"**{r['errors']}**{f' ({by_status})' if by_status else ''}; 429s "
            f"{r['rate_limited_429']}. Largest process-memory growth: "
            f"**{num(r['max_rss_growth_pct'])}%** ({r['max_rss_growth_process']}); of "
            f"MyAIServ's own processes: {num(r['app_max_rss_growth_pct'])}% "
            f"({r['app_max_rss_growth_process']}); Redis "
            f"{num(r['redis_memory_growth_pct'])}% (its maxmemory: "
            f"{num(r['redis_maxmemory_mb'])} MB). Growing: {growing}."
        ),
        "",
        (
            f"Reconciliation, the backlog indexed {r['backlog_drained_after_s']:g} s after the "
            f"load: {c['acknowledged_documents']:,} documents written "
            f"({c['acknowledged_deletes']:,} of them deleted since) and {c['seeded_documents']:,} "
            f"seeded, {c['acknowledged_runs']:,} runs recorded by chat answers; lost "
            f"**{r['lost_writes']}**, extra in the index **{r['extra_in_index']}** "
            f"(stored but never acknowledged: {c['unacknowledged_stored']})."
        ),
        "",
        "Redis at the end, by kind of key: "
        + (
            ", ".join(
                f"`{kind}` {g['keys']:,} keys, {g['mb']:.1f} MB"
                + (f" (**{g['without_expiry']:,} never expire**)" if g["without_expiry"] else "")
                for kind, g in r.get("redis_keys", {}).items()
            )
            or "none"
        )
        + ".",
        "",
        "| request | requests | p50 ms | p99 ms | answers |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, f in r["latency"].items():
        statuses = ", ".join(f"{k}: {v:,}" for k, v in r["answers"][name].items())
        lines.append(
            f"| {name} | {f['requests']:,} | {f['p50_ms']:.0f} | {f['p99_ms']:.0f} | {statuses} |"
        )
    lines += [
        "",
        (
            "| series | first | second quarter (median) | last quarter (median) | change | "
            "slope per hour (second half) | grows |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, g in r["series"].items():
        change = "" if g["growth_pct"] is None else f"{g['growth_pct']:+.1f}%"
        lines.append(
            f"| `{name}` | {num(g['first'])} | {num(g['q2_median'])} | {num(g['q4_median'])} "
            f"| {change} | {g['slope_per_h']:+,.1f} | {'**yes**' if g['grows'] else 'no'} |"
        )
    return [*lines, "", *_plot("soak"), f"How: {_how(results, 'soak')}", ""]


RENDERERS = [
    _targets,
    _ingest,
    _real_docs,
    _relevance,
    models_report.section,
    _search,
    _sustained,
    _scaling,
    _memory,
    _section("vectors", _vectors),
    _section("load", _load),
    _section("reliability", _reliability),
    _failover,
    _hangs,
    _section("security", _security),
    _section("console", _console),
    _section("topology", _topology),
    _section("tracing", _tracing),
    growth_report.section,
    _soak,
    sizing.section,
]


def render(results: dict[str, Any]) -> str:
    m = results.get("_machine", {})
    lines = [
        "# MyAIServ benchmarks",
        "",
        (
            f"Written by `make bench` ({results.get('_updated', '')}, commit "
            f"{m.get('commit', '?')}) on {m.get('cores', '?')} cores ({m.get('cpu', '?')}), "
            f"Python {m.get('python', '?')}. Figures are also in `bench/results.json`."
        ),
        "",
    ]
    for renderer in RENDERERS:
        lines += renderer(results)
    return "\n".join(lines)


def _readme_relevance(results: dict[str, Any]) -> list[str]:
    modes = _get(results, "relevance.cisi") or {}
    rows = [
        f"| {mode} | {m['ndcg@10']:.3f} | {m['map']:.3f} | {m['recall@100']:.3f} |"
        for mode in OUR_MODES
        if (m := modes.get(mode))
    ]
    return ["| mode | nDCG@10 | MAP | Recall@100 |", "| --- | --- | --- | --- |", *rows]


def _readme_backends(results: dict[str, Any]) -> list[str]:
    ingest = results.get("ingest") or {}
    runs = [(ingest.get("backend", "torch"), ingest), ("torch", ingest.get("torch") or {})]
    rows = [
        f"| {backend} | {run['raw_encode_chunks_per_s']:.1f} | {run['chunks_per_s']:.1f} |"
        for backend, run in runs
        if run.get("raw_encode_chunks_per_s")
    ]
    return [
        "| backend | raw encode, chunks/s | MyAIServ ingest, chunks/s |",
        "| --- | --- | --- |",
        *rows,
    ]


def _readme_console(results: dict[str, Any]) -> list[str]:
    c = results.get("console") or {}
    if "runs_p50_ms" not in c:
        return []
    return [
        "| page (server time, ms) | page p50 / p99 | its API call p50 / p99 |",
        "| --- | --- | --- |",
        (
            f"| runs search, {c['runs_stored']:,} runs | {c['runs_p50_ms']:.1f} / "
            f"{c['runs_p99_ms']:.1f} | {c['runs_api_p50_ms']:.1f} / {c['runs_api_p99_ms']:.1f} |"
        ),
        (
            f"| documents search | {c['documents_p50_ms']:.1f} / {c['documents_p99_ms']:.1f} | "
            f"{c['documents_api_p50_ms']:.1f} / {c['documents_api_p99_ms']:.1f} |"
        ),
    ]


def _readme_topology(results: dict[str, Any]) -> list[str]:
    t = results.get("topology") or {}
    if "boot_s" not in t:
        return []
    return [
        "| topology figure (bench/REPORT.md) | value |",
        "| --- | --- |",
        f"| boot to `/ready` through nginx, empty volumes | {t['boot_s']:.0f} s |",
        f"| app image | {t['image_mb']:,} MB |",
        f"| failed requests, scaling 3 -> 5 | {t['scale_3_to_5_failed_requests']} |",
        f"| failed searches, an Elasticsearch node down | {t['es_node_loss_failed_searches']} |",
        f"| Redis failover, until the app is ready | {t['redis_failover_s']:.1f} s |",
    ]


def _readme_peers(results: dict[str, Any]) -> list[str]:
    """MyAIServ beside the peers, each cell with its rounds' spread and what it means for
    MyAIServ (a lead within the spread is a tie)."""
    peers = _peers(results)
    words = {"ahead": "MyAIServ ahead", "behind": "MyAIServ behind", "tie": "tie"}

    def row(
        label: str,
        ours: Spread | None,
        theirs: list[Spread | None],
        higher: bool,
        fmt: str = "{:.1f}",
    ) -> str:
        cells = [
            f"{t.cell(fmt)} ({words[versus(ours, t, higher_is_better=higher)[0]]})"
            if ours and t
            else (t.cell(fmt) if t else "")
            for t in theirs
        ]
        return f"| {label} | {ours.cell(fmt) if ours else ''} | {' | '.join(cells)} |"

    rows = []
    for backend in PEER_SUFFIX:
        ours = Spread.of(_ours_ingest(results, backend), "chunks_per_s")
        theirs = [
            Spread.of(dict(_peer_runs(p, "ingest")).get(backend), "chunks_per_s")
            for _, _, p in peers
        ]
        if ours and any(theirs):
            rows.append(row(f"ingest, chunks/s, {backend}", ours, theirs, True))
    search = results.get("search") or {}
    ours_backend = search.get("backend") or _get(results, "ingest.backend") or "?"
    for backend in PEER_SUFFIX:
        ours = Spread.of(search, "hybrid_uncached_p50_ms")
        theirs = [
            Spread.of(dict(_peer_runs(p, "search")).get(backend), "hybrid_uncached_p50_ms")
            for _, _, p in peers
        ]
        if ours and any(theirs):
            label = f"hybrid search p50 ms, peers on {backend} (MyAIServ: HTTP, {ours_backend})"
            rows.append(row(label, ours, theirs, False))
    ingest_backend = _get(results, "ingest.backend")
    if ingest_backend in PEER_SUFFIX:
        ours = Spread.of(results.get("memory"), "indexer_peak_rss_mb")
        key = f"ingest{PEER_SUFFIX[ingest_backend]}_peak_rss_mb"
        theirs = [Spread.of(p.get("memory"), key) for _, _, p in peers]
        if ours and any(theirs):
            label = f"peak RSS MB while ingesting, {ingest_backend} (MyAIServ: its indexer)"
            rows.append(row(label, ours, theirs, False, "{:.0f}"))
    if not rows:
        return []
    names = " | ".join(name for _, name, _ in peers)
    return [
        f"| median of the rounds (lowest-highest) | MyAIServ | {names} |",
        "| --- " * (2 + len(peers)) + "|",
        *rows,
    ]


README_BLOCKS = {
    "relevance": _readme_relevance,
    "models": models_report.readme_block,
    "backends": _readme_backends,
    "peers": _readme_peers,
    "console": _readme_console,
    "topology": _readme_topology,
}
_BLOCK = re.compile(r"(<!-- bench:(\w+) -->\n)(?:.*?\n)?(<!-- /bench:\2 -->)", re.DOTALL)


def with_readme_blocks(readme: str, results: dict[str, Any]) -> str:
    """``readme`` with each ``<!-- bench:NAME -->`` block rendered from ``results``."""

    def block(match: re.Match[str]) -> str:
        lines = README_BLOCKS[match.group(2)](results)
        return match.group(1) + "".join(f"{line}\n" for line in lines) + match.group(3)

    return _BLOCK.sub(block, readme)
