"""MyAIServ beside its peers on the same machine, cluster, model and chunks: LangChain's
`ElasticsearchStore` and Haystack's `ElasticsearchDocumentStore` (run by
bench/peers/run.py in bench/peers/.venv, an environment of their own: their Elasticsearch
integrations need the 8.x client).

The chunks are MyAIServ's own CISI chunks (the `bench-search` tenant that
`bench/search.py` indexes; run it first — `make bench` does), read back from its index, so
every system embeds and searches exactly the same texts. Each peer ingests them with
all-MiniLM-L6-v2 from the same local folder (timed: embedding + bulk writes), then every
judged CISI query goes through its BM25, embedding and hybrid retrievers: 1500 chunks
deep for relevance (chunks collapsed to their documents, first occurrence; nDCG@10, MAP,
Recall@100), and again with k=10, timed in-process after 3 warm-up queries, for latency.
Writes `peers.langchain.*` and `peers.haystack.*`.
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
from myaiserv.datasets.trec import load_collection
from myaiserv.embeddings.model import resolve_model_path
from myaiserv.evaluation import metrics
from myaiserv.search.client import create_es_client

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"
PEERS_PYTHON = PEERS / ".venv" / "bin" / "python"
DEPTH = 1500


async def chunks_of(settings: Any) -> tuple[list[dict[str, str]], dict[str, str]]:
    """MyAIServ's CISI chunks: (chunks for the peers, chunk id -> CISI document id)."""
    es = create_es_client(settings)
    chunks: list[dict[str, str]] = []
    doc_of: dict[str, str] = {}
    try:
        alias = f"{settings.es.index_prefix}-documents"
        resp = await es.search(
            index=alias,
            query={"prefix": {"source": "cisi:"}},
            source=["chunk_id", "text", "source"],
            size=5000,
            sort=["_doc"],
            scroll="2m",
        )
        scroll_id = resp["_scroll_id"]
        while resp["hits"]["hits"]:
            for hit in resp["hits"]["hits"]:
                src = hit["_source"]
                chunk_id = src.get("chunk_id") or hit["_id"]
                chunks.append({"id": chunk_id, "text": src["text"]})
                doc_of[chunk_id] = src["source"].removeprefix("cisi:")
            resp = await es.scroll(scroll_id=scroll_id, scroll="2m")
            scroll_id = resp["_scroll_id"]
        await es.clear_scroll(scroll_id=scroll_id)
    finally:
        await es.close()
    return chunks, doc_of


def score(
    rankings: dict[str, list[str]], doc_of: dict[str, str], qrels: dict[str, dict[str, int]]
) -> dict[str, float]:
    per_query = []
    for qid, chunk_ids in rankings.items():
        ranked = list(dict.fromkeys(doc_of[c] for c in chunk_ids if c in doc_of))
        judged = qrels[qid]
        per_query.append(
            {
                "ndcg@10": metrics.ndcg(ranked, judged, 10),
                "map": metrics.average_precision(ranked, judged),
                "recall@100": metrics.recall(ranked, judged, 100),
            }
        )
    return {k: round(statistics.fmean(q[k] for q in per_query), 4) for k in per_query[0]}


async def main() -> None:
    if not PEERS_PYTHON.exists():
        raise SystemExit("bench/peers/.venv is missing: `make bench-peers` installs it")
    settings, _ = bench_settings(DB, REDIS_DB, PREFIX)
    collection = load_collection(CISI)
    chunks, doc_of = await chunks_of(settings)
    if not chunks:
        raise SystemExit("no CISI chunks in the bench-search index: run `make bench-search`")
    queries = [{"id": q.id, "text": q.text} for q in collection.judged_queries()]
    work = Path(tempfile.mkdtemp(prefix="myaiserv-peers-"))
    (work / "in.json").write_text(
        json.dumps(
            {
                "es_url": settings.es_url[0],
                "prefix": "benchpeers",
                "model": resolve_model_path(settings.embedding.model),
                "chunks": chunks,
                "queries": queries,
                "depth": DEPTH,
                "batch_size": settings.embedding.batch_size,
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    cmd = [str(PEERS_PYTHON), str(PEERS / "run.py"), str(work / "in.json"), str(work / "out.json")]
    await asyncio.to_thread(subprocess.run, cmd, env=env, check=True, timeout=7200)
    raw = json.loads((work / "out.json").read_text())
    figures: dict[str, Any] = {"chunks": len(chunks), "queries": len(queries), "depth": DEPTH}
    for peer, result in raw.items():
        if "error" in result:
            figures[peer] = {"error": result["error"]}
            print(result.get("trace", ""))
            continue
        figures[peer] = {
            "ingest_chunks_per_s": result["ingest"]["chunks_per_s"],
            "ingest_seconds": result["ingest"]["seconds"],
            "relevance": {
                name: score(r["rankings"], doc_of, collection.qrels)
                for name, r in result["retrievers"].items()
            },
            "latency": {
                name: {k: r[k] for k in ("p50_ms", "p99_ms", "rps_sequential")}
                for name, r in result["retrievers"].items()
            },
            "notes": result.get("notes", []),
        }
    report.save("peers", figures, {"how": __doc__.strip() if __doc__ else ""})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
