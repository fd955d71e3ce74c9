"""Vector index options: what each costs to index and what it gives back in recall.

Elasticsearch 9.1+ picks ``bbq_hnsw`` (1-bit quantisation) for 384-dim vectors unless
told otherwise, so MyAIServ names ``index_options`` explicitly (``es.vector_index_type``).
This measures the choice, on the CISI chunks embedded by MyAIServ's embedder:

- recall: each judged CISI query's kNN hits, the way the search API asks for them
  (k = the rank window, num_candidates = max(search.num_candidates, k)), against the exact
  nearest neighbours computed with numpy over the same vectors: recall@10 and @k;
- cost: Elasticsearch's CPU seconds (its process's, from /proc) to bulk-index every
  vector and refresh, and the shard's own indexing time.

One index per option, a mapping made by the same code as MyAIServ's indices (only the
vector field), in the benchmark's own index prefix. Writes ``vectors.*`` in
bench/results.json and the report's "Vector index options" section.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from elasticsearch.helpers import async_bulk

from bench import report
from bench.against_peers import chunks_for
from bench.common import bench_settings
from bench.ingest import BENCH_DB, BENCH_REDIS_DB
from bench.search import CISI
from myaiserv.datasets.trec import load_collection
from myaiserv.embeddings.model import Embedder
from myaiserv.resources import index_options
from myaiserv.search import query as q
from myaiserv.search.client import create_es_client
from myaiserv.search.indices import vector_field

PREFIX = "benchvec"
TYPES = ("hnsw", "int8_hnsw", "bbq_hnsw")
REPEATS = 3  # indexing cost: the median of three (the first carries JIT warm-up)


def es_cpu_seconds() -> float:
    """CPU seconds used so far by the local Elasticsearch process(es)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"org.elasticsearch" not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def vector_memory(es: Any, index: str) -> dict[str, int]:
    """The index's vector files that kNN search reads from memory (the page cache, off the
    heap), in bytes, primaries: the raw float vectors (vec), the HNSW graph (vex), the
    int8/int4 (veq) or one-bit (veb) quantised copies, and their total."""
    stats = await es.indices.stats(index=index, metric="dense_vector")
    dense = stats["_all"]["primaries"]["dense_vector"]
    off = dense.get("off_heap", {})
    return {
        "vectors": int(dense.get("value_count", 0)),
        **{
            f"{part}_bytes": int(off.get(f"total_{part}_size_bytes", 0))
            for part in ("vec", "vex", "veq", "veb")
        },
        "total_bytes": int(off.get("total_size_bytes", 0)),
    }


def recall(found: list[list[int]], exact: np.ndarray, depth: int) -> float:
    return float(
        np.mean(
            [
                len(set(f[:depth]) & set(e[:depth].tolist())) / depth
                for f, e in zip(found, exact, strict=True)
            ]
        )
    )


async def index_all(
    es: Any,
    index: str,
    field: dict[str, Any],
    vectors: np.ndarray,
    cpu: Callable[[], float] = es_cpu_seconds,
) -> dict[str, float]:
    """Index every vector into a fresh ``index``; what it cost Elasticsearch (``cpu``: its
    CPU seconds so far; by default every Elasticsearch process on the machine's)."""
    await es.options(ignore_status=404).indices.delete(index=index)
    await es.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": -1},
        mappings={"properties": {"embedding": field}},
    )
    cpu_before, started = cpu(), time.perf_counter()
    await async_bulk(
        es,
        ({"_index": index, "_id": str(i), "embedding": v} for i, v in enumerate(vectors)),
        chunk_size=500,
    )
    await es.indices.refresh(index=index)
    seconds, cpu_s = time.perf_counter() - started, cpu() - cpu_before
    stats = await es.indices.stats(index=index, metric="indexing")
    return {
        "index_es_cpu_s": cpu_s,
        "index_seconds": seconds,
        "shard_indexing_ms": stats["_all"]["primaries"]["indexing"]["index_time_in_millis"],
    }


async def knn_ids(
    es: Any, index: str, query_vectors: Any, k: int, candidates: int
) -> list[list[int]]:
    """Each query vector's approximate top ``k`` (document ids are the vectors' row
    numbers), searched as the API asks: ``k`` and ``num_candidates``."""
    found = []
    for vector in query_vectors:
        resp = await es.search(
            index=index,
            knn={"field": "embedding", "query_vector": vector.tolist(), "k": k,
                 "num_candidates": candidates},
            size=k,
            _source=False,
        )  # fmt: skip
        found.append([int(h["_id"]) for h in resp["hits"]["hits"]])
    return found


async def main() -> None:
    settings, _ = bench_settings(BENCH_DB, BENCH_REDIS_DB, PREFIX)  # only ES is used
    embedder = Embedder.from_settings(settings.embedding)
    info = embedder.load()
    texts = [c["text"] for c in chunks_for(settings, embedder)]
    queries = [query.text for query in load_collection(CISI).queries]
    vectors = embedder.encode_sync(texts)
    query_vectors = embedder.encode_sync(queries)
    embedder.close()
    k = settings.search.rank_window
    candidates = q.candidates(settings.search.num_candidates, k)  # as the API asks
    exact = np.argsort(-(query_vectors @ vectors.T), axis=1)[:, :k]

    es = create_es_client(settings)
    figures: dict[str, Any] = {
        "chunks": len(texts),
        "queries": len(queries),
        "k": k,
        "num_candidates": candidates,
        "backend": settings.embedding.backend,
    }
    try:
        options = index_options(settings)
        for kind in TYPES:
            field = vector_field(info, dataclasses.replace(options, vector_index_type=kind))
            index = f"{PREFIX}-{kind.replace('_', '-')}"
            costs = []
            for _ in range(REPEATS):
                costs.append(await index_all(es, index, field, vectors))
            found = await knn_ids(es, index, query_vectors, k, candidates)
            await es.indices.delete(index=index)
            figures[kind] = {
                "recall_at_10": round(recall(found, exact, 10), 4),
                f"recall_at_{k}": round(recall(found, exact, k), 4),
                **{key: round(statistics.median(c[key] for c in costs), 2) for key in costs[0]},
            }
            print(f"bench: vectors {kind}: {figures[kind]}", flush=True)
    finally:
        await es.close()
    figures["default"] = settings.es.vector_index_type
    how = (
        f"the {len(texts)} CISI chunks embedded once ({settings.embedding.backend}); per "
        "option, a fresh one-shard index with only the vector field, mapped by MyAIServ's "
        "own code; cost = Elasticsearch's process CPU seconds from the first bulk request "
        "(500 vectors each) to the end of the refresh, and the shard's index_time_in_millis, "
        f"median of {REPEATS} fresh indices; "
        f"recall = each of the {len(queries)} CISI queries' kNN hits (k={k}, "
        f"num_candidates={candidates}, as the search API asks) against the exact nearest "
        "neighbours by numpy over the same vectors, averaged (the last index built)."
    )
    report.save("vectors", figures, {"how": how})


if __name__ == "__main__":
    asyncio.run(main())
