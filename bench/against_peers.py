"""MyAIServ beside its peers on the same machine, cluster, model and chunks: LangChain's
`ElasticsearchStore` and Haystack's `ElasticsearchDocumentStore`, run by
bench/peers/run.py in bench/peers/.venv (an environment of their own: their Elasticsearch
integrations need the 8.x client).

Every system gets MyAIServ's own CISI chunks (the indexer's chunker, title line
included), and embeds them with all-MiniLM-L6-v2 from the same local folder.
`bench/ingest.py` times the peers' ingest in its rounds, beside MyAIServ's; this module
then sends every judged CISI query through each peer's BM25, embedding and hybrid
retrievers: 1500 chunks deep for relevance (chunks collapsed to their documents, first
occurrence; nDCG@10, MAP, Recall@100, as for MyAIServ), and again with k=10, timed
in-process, one caller, after 3 warm-up queries, for latency (p50, p99, req/s).
Writes `peers.<peer>.relevance.*`, `peers.<peer>.search.*`, `peers.<peer>.memory.*`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import report
from bench.common import bench_settings
from bench.search import CISI, DB, PREFIX, REDIS_DB
from indexers.chunk import chunk_text
from indexers.ingest import documents_from_collection
from myaiserv.config import Settings
from myaiserv.datasets.trec import load_collection
from myaiserv.embeddings.model import Embedder, resolve_model_path
from myaiserv.evaluation import metrics
from myaiserv.search.client import create_es_client

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / "bench" / "peers"
PEERS_PYTHON = PEERS_DIR / ".venv" / "bin" / "python"
PEERS = ("langchain", "haystack")
DEPTH = 1500


def peer_index(peer: str) -> str:
    return f"benchpeers-{peer}"


def chunks_for(settings: Settings, embedder: Embedder) -> list[dict[str, str]]:
    """CISI chunked exactly as the indexer chunks it; ids ``cisi:<doc>#<n>``."""
    cfg = settings.indexing
    max_tokens = min(cfg.chunk_max_tokens, embedder.load().max_seq_length - 2)
    return [
        {"id": f"{d.source}#{n}", "text": c.text}
        for d in documents_from_collection(CISI)
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


def ingest_config(settings: Settings, peer: str, chunks: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "es_url": settings.es_url[0],
        "index": peer_index(peer),
        "model": resolve_model_path(settings.embedding.model),
        "chunks": chunks,
        "batch_size": settings.embedding.batch_size,
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


async def main() -> None:
    settings, _ = bench_settings(DB, REDIS_DB, PREFIX)
    collection = load_collection(CISI)
    queries = [{"id": q.id, "text": q.text} for q in collection.judged_queries()]
    embedder = Embedder.from_settings(settings.embedding)
    chunks = chunks_for(settings, embedder)
    embedder.close()
    figures: dict[str, Any] = {"chunks": len(chunks), "queries": len(queries), "depth": DEPTH}
    for peer in PEERS:
        if await indexed(settings, peer_index(peer)) != len(chunks):
            # Not left by bench/ingest.py (run alone): write the chunks, untimed.
            run_peer("ingest", peer, ingest_config(settings, peer, chunks))
        cfg = {
            **ingest_config(settings, peer, []),
            "queries": queries,
            "depth": DEPTH,
        }
        result = run_peer("search", peer, cfg)
        retrievers = result["retrievers"]
        relevance = {mode: score(r["rankings"], collection.qrels) for mode, r in retrievers.items()}
        figures[peer] = {
            "relevance": {"cisi": relevance},
            "search": {
                f"{mode}_uncached_{k}": r[k]
                for mode, r in retrievers.items()
                for k in ("p50_ms", "p99_ms", "rps_1")
            },
            "memory": {"search_peak_rss_mb": result["peak_rss_mb"]},
            "notes": result["notes"],
        }
    report.save("peers", figures, {"how": __doc__.strip() if __doc__ else ""}, merge=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
