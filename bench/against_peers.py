"""MyAIServ beside its peers on the same machine, cluster, model and chunks: LangChain's
`ElasticsearchStore` and Haystack's `ElasticsearchDocumentStore`, run by
bench/peers/run.py in bench/peers/.venv (an environment of their own: their Elasticsearch
integrations need the 8.x client).

Every system gets MyAIServ's own CISI chunks (the indexer's chunker, title line
included), and embeds them with all-MiniLM-L6-v2 from the same local folder: the peers on
their default backend (torch), and again on MyAIServ's own ONNX int8 file through
sentence-transformers' ONNX backend, each with the threads MyAIServ gives that backend.
`bench/ingest.py` times the peers' ingest in its rounds, beside MyAIServ's; this module
then sends every judged CISI query through each peer's BM25, embedding and hybrid
retrievers, on each backend: 1500 chunks deep for relevance (chunks collapsed to their
documents, first occurrence; nDCG@10, MAP, Recall@100, as for MyAIServ). Relevance again
with the best analyzer the cluster offers the peers' own index options (Elasticsearch's
`english` where the cluster has it, else the nearest built-in one), on their default
backend. Latency: in BENCH_ROUNDS rounds (default 3), each peer and backend in a fresh
process, in an order that rotates from round to round, every CISI query (the 112 that
MyAIServ's search benchmark times) with k=10, in-process, one caller, after 5 warm-up
queries (p50, p99, req/s: the median of the rounds, with their lowest and highest); the
process's own peak RSS (VmHWM) likewise.
Writes `peers.<peer>.relevance[_onnx_int8|_best_analyzer].*`,
`peers.<peer>.search[_onnx_int8].*`, `peers.<peer>.memory.search[_onnx_int8]_peak_rss_mb`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.common import bench_settings, rounds
from bench.search import CISI, DB, PREFIX, REDIS_DB
from bench.spread import over_rounds
from indexers.chunk import chunk_text
from indexers.ingest import documents_from_collection
from myaiserv.config import Settings
from myaiserv.datasets.trec import load_collection
from myaiserv.documents.service import NewDocument
from myaiserv.embeddings import onnx
from myaiserv.embeddings.cores import cores
from myaiserv.embeddings.model import Embedder, resolve_model_path
from myaiserv.evaluation import metrics
from myaiserv.search.client import create_es_client

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / "bench" / "peers"
PEERS_PYTHON = PEERS_DIR / ".venv" / "bin" / "python"
PEERS = ("langchain", "haystack")
ENCODER = "sentence-transformers"  # what both peers embed with: run.py's ``encode``
DEPTH = 1500
ONNX_INT8 = "onnx-int8"
# What MyAIServ's index uses (myaiserv/search/analysis.py: English stop words and Snowball
# stems, in our code) has no index-settings equivalent without a stemming token filter;
# Elasticsearch's `english` analyzer is the peers' nearest. Without it (the integ-test
# distribution has no analysis-common module, so no language analyzer and no stemmer
# filter at all): English stop words alone (bench/peers/run.py's ANALYZERS says how each
# peer's index options give them).
PREFERRED_ANALYZER, FALLBACK_ANALYZER = "english", "english_stop"


@dataclass(frozen=True)
class Variant:
    """One way of running the peers: the keys' suffix, the embedding backend, the
    analyzer of the BM25 field (None: their default), and whether latency is timed."""

    suffix: str
    backend: str
    analyzer: str | None = None
    timed: bool = True


DEFAULT = Variant("", "torch")
ONNX = Variant("_onnx_int8", ONNX_INT8)


def peer_index(peer: str, variant: Variant = DEFAULT) -> str:
    return f"benchpeers-{peer}{variant.suffix.replace('_', '-')}"


def cisi_documents() -> list[NewDocument]:
    """CISI's documents, as MyAIServ ingests them; the first BENCH_DOCS only where that is
    set (a quick run that proves the code, not one whose figures mean anything)."""
    docs = list(documents_from_collection(CISI))
    limit = int(os.environ.get("BENCH_DOCS") or 0)
    return docs[:limit] if limit else docs


def chunks_for(settings: Settings, embedder: Embedder) -> list[dict[str, str]]:
    """CISI chunked exactly as the indexer chunks it; ids ``cisi:<doc>#<n>``."""
    cfg = settings.indexing
    max_tokens = min(cfg.chunk_max_tokens, embedder.load().max_seq_length - 2)
    return [
        {"id": f"{d.source}#{n}", "text": c.text}
        for d in cisi_documents()
        for n, c in enumerate(
            chunk_text(
                "x",
                d.text,
                count_tokens=embedder.count_tokens,
                max_tokens=max_tokens,
                overlap_tokens=min(cfg.chunk_overlap_tokens, max_tokens // 2),
                title=d.title,
            )
        )
    ]


def document_of(chunk_id: str) -> str:
    return chunk_id.rsplit("#", 1)[0].removeprefix("cisi:")


def run_peer(command: str, peer: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """bench/peers/run.py COMMAND PEER in its own environment, one process per call."""
    if not PEERS_PYTHON.exists():
        raise SystemExit("bench/peers/.venv is missing: `make bench` installs it")
    with tempfile.TemporaryDirectory(prefix="myaiserv-peers-") as work:
        source, target = Path(work) / "in.json", Path(work) / "out.json"
        source.write_text(json.dumps(cfg))
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        script = str(PEERS_DIR / "run.py")
        cmd = [str(PEERS_PYTHON), script, command, peer, str(source), str(target)]
        subprocess.run(cmd, env=env, check=True, timeout=3600)
        return json.loads(target.read_text())


def embedding_threads(settings: Settings, backend: str) -> int:
    """The threads MyAIServ's embedder computes with on ``backend`` (one indexer or API
    process on the machine): ONNX, its setting or one per core; torch, its setting, or 0
    for torch's own default (which both sides then keep)."""
    threads = settings.embedding.threads
    if backend == "torch":
        return threads
    return threads or cores()


def backend_config(settings: Settings, backend: str) -> dict[str, Any]:
    """What run.py needs to embed as MyAIServ does on ``backend``: the model folder, on
    onnx-int8 the very file MyAIServ's embedder loads (exported first if the cache has
    none), and the threads."""
    model = resolve_model_path(settings.embedding.model)
    cfg: dict[str, Any] = {
        "model": model,
        "backend": backend,
        "threads": embedding_threads(settings, backend),
    }
    if backend != "torch":
        model_id = Embedder.from_settings(settings.embedding).model_id
        path = onnx.ensure_exported(model, model_id, backend, settings.embedding.onnx_cache_dir)
        cfg["onnx_file"] = str(path)
    return cfg


def ingest_config(
    settings: Settings,
    peer: str,
    chunks: list[dict[str, str]],
    variant: Variant = DEFAULT,
) -> dict[str, Any]:
    return {
        "es_url": settings.es_url[0],
        "index": peer_index(peer, variant),
        "chunks": chunks,
        "batch_size": settings.embedding.batch_size,
        "analyzer": variant.analyzer,
        **backend_config(settings, variant.backend),
    }


def score(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    per_query = []
    for qid, chunk_ids in rankings.items():
        ranked = list(dict.fromkeys(document_of(c) for c in chunk_ids))
        judged = qrels[qid]
        per_query.append(
            {
                "ndcg@10": metrics.ndcg(ranked, judged, 10),
                "map": metrics.average_precision(ranked, judged),
                "recall@100": metrics.recall(ranked, judged, 100),
            }
        )
    return {k: round(statistics.fmean(q[k] for q in per_query), 4) for k in per_query[0]}


async def indexed(settings: Settings, index: str) -> int:
    es = create_es_client(settings)
    try:
        resp = await es.options(ignore_status=404).count(index=index)
        return int(resp["count"]) if resp.meta.status == 200 else 0
    finally:
        await es.close()


async def best_analyzer(settings: Settings) -> tuple[str, str]:
    """(analyzer, why): Elasticsearch's ``english`` where the cluster has it, else the
    fallback, with the cluster's own answer."""
    es = create_es_client(settings)
    try:
        resp = await es.options(ignore_status=400).indices.analyze(
            analyzer=PREFERRED_ANALYZER, text="libraries"
        )
    finally:
        await es.close()
    if resp.meta.status == 200:
        return PREFERRED_ANALYZER, (
            f"Elasticsearch's `{PREFERRED_ANALYZER}` analyzer (English stop words and "
            "Porter stems), through the peers' own index options"
        )
    error = str(resp.body.get("error", {}).get("reason", resp.body))[:120]
    return FALLBACK_ANALYZER, (
        f"the cluster has no `{PREFERRED_ANALYZER}` analyzer ({error}): it lacks the "
        "analysis-common module, so no language analyzer and no stemming token filter "
        "exists here, and MyAIServ's stems (made in its own code, myaiserv/search/"
        "analysis.py) have no index-settings equivalent. The peers get English stop "
        "words, the nearest the cluster allows: LangChain through `custom_index_settings` "
        "(the index's default analyzer: `standard` with `_english_` stop words); Haystack "
        "through `custom_mapping`, its only index option, which can only name an analyzer "
        "the cluster has built in: `stop` (lower-cased letters, English stop words; digits "
        "dropped). What is left between them and MyAIServ's BM25 is stemming."
    )


def section(result: dict[str, Any]) -> dict[str, Any]:
    """The backend and threads a run of run.py computed with, for its row."""
    return {"backend": result["backend"], "threads": result["threads"]}


async def main() -> None:
    settings, _ = bench_settings(DB, REDIS_DB, PREFIX)
    collection = load_collection(CISI)
    queries = [{"id": q.id, "text": q.text} for q in collection.judged_queries()]
    timed = [q.text for q in collection.queries]  # as MyAIServ's search benchmark
    embedder = Embedder.from_settings(settings.embedding)
    chunks = chunks_for(settings, embedder)
    embedder.close()
    n_rounds = rounds()
    analyzer, why = await best_analyzer(settings)
    variants = [DEFAULT, ONNX, Variant("_best_analyzer", "torch", analyzer, timed=False)]
    figures: dict[str, Any] = {
        "chunks": len(chunks),
        "queries": len(queries),
        "timed_queries": len(timed),
        "depth": DEPTH,
        "rounds": n_rounds,
        "best_analyzer": {"analyzer": analyzer, "why": why},
    }
    for peer in PEERS:
        figures[peer] = {"memory": {}, "notes": []}
        for v in variants:
            cfg = ingest_config(settings, peer, chunks, v)
            if await indexed(settings, cfg["index"]) != len(chunks):
                # Not left by bench/ingest.py (run alone, or this analyzer): untimed.
                print(f"bench: {peer}{v.suffix}: writing the chunks (untimed)", flush=True)
                run_peer("ingest", peer, cfg)
            print(f"bench: {peer}{v.suffix}: relevance, {DEPTH} deep", flush=True)
            result = run_peer("search", peer, {**cfg, "chunks": [], "queries": queries,
                                               "depth": DEPTH})  # fmt: skip
            figures[peer][f"relevance{v.suffix}"] = {
                collection.name: {
                    mode: score(r["rankings"], collection.qrels)
                    for mode, r in result["retrievers"].items()
                },
                "analyzer": result["analyzer"],
                **section(result),
            }
            if not v.suffix:
                figures[peer]["notes"] = result["notes"]

    # Latency and memory: a fresh process per peer and backend in every round, in an
    # order that rotates from round to round (the machine's speed drifts).
    runs = [(peer, v) for v in variants if v.timed for peer in PEERS]
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = {(p, v.suffix): [] for p, v in runs}
    for n in range(n_rounds):
        shift = n % len(runs)
        line = []
        for peer, v in runs[shift:] + runs[:shift]:
            cfg = {**ingest_config(settings, peer, [], v), "queries": [], "depth": 0,
                   "timed": timed}  # fmt: skip
            result = run_peer("search", peer, cfg)
            by_run[peer, v.suffix].append(result)
            line.append(f"{peer}{v.suffix} {result['retrievers']['hybrid']['p50_ms']:.1f}")
        print(f"bench: round {n + 1} (hybrid p50 ms): {', '.join(line)}", flush=True)
    for (peer, suffix), results in by_run.items():
        search: dict[str, Any] = section(results[0])
        for mode in results[0]["retrievers"]:
            for k, digits in (("p50_ms", 2), ("p99_ms", 2), ("rps_1", 1)):
                values = [r["retrievers"][mode][k] for r in results]
                search |= over_rounds(f"{mode}_uncached_{k}", values, digits)
        figures[peer][f"search{suffix}"] = search
        figures[peer]["memory"] |= over_rounds(
            f"search{suffix}_peak_rss_mb", [r["peak_rss_mb"] for r in results], 1
        )
    report.save("peers", figures, {"how": __doc__.strip() if __doc__ else ""}, merge=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
