"""Search as the corpus grows (`bench.growth`): at a measuring point, `/v1/search` in each
mode, uncached and cached, beside the direct client, with bench/search.py's machinery;
at the largest size, kNN recall@10 against exact search and the vector index options
re-checked with bench/vectors.py's.

Per round (SCALE_ROUNDS, default 3), over the held-out queries, one client, sequentially:
the API's Redis database flushed, hybrid (the API's default) paired query by query with
the direct client (the query embedding and the same two Elasticsearch searches in one
`_msearch`, which goes first alternating); then the same hybrid queries again, each page
now cached (server time, from `Server-Timing`); then bm25 and vector, each after a flush.
5 warm-up queries before. Figures pool every round's latencies (p50, p99, client time);
the spread is the lowest and highest per-round p50.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from elasticsearch.helpers import async_scan

from bench.common import cpu_seconds, peak_rss_mb, private_stack_down, private_stack_up
from bench.search import Timings, direct_client, paired, percentile, search_plan
from bench.vectors import TYPES, index_all, knn_ids, recall, vector_memory
from myaiserv.cache.client import create_redis_client
from myaiserv.config import Settings
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import local_api
from myaiserv.resources import index_options
from myaiserv.search import query as q
from myaiserv.search.client import create_es_client
from myaiserv.search.indices import vector_field

MODES = ("hybrid", "bm25", "vector", "cached", "direct")


def summarise(rounds: dict[str, list[list[float]]]) -> dict[str, float]:
    """``mode -> [per-round latencies]`` as ``<mode>_p50_ms``, ``_p99_ms`` (pooled) and
    ``_p50_min_ms`` / ``_p50_max_ms`` (the per-round p50s' range)."""
    out: dict[str, float] = {}
    for mode, per_round in rounds.items():
        pooled = [v for values in per_round for v in values]
        if not pooled:
            continue
        p50s = [statistics.median(values) for values in per_round if values]
        out[f"{mode}_p50_ms"] = round(statistics.median(pooled), 2)
        out[f"{mode}_p99_ms"] = round(percentile(pooled, 0.99), 2)
        out[f"{mode}_p50_min_ms"] = round(min(p50s), 2)
        out[f"{mode}_p50_max_ms"] = round(max(p50s), 2)
    return out


async def measure(
    settings: Settings, env: dict[str, str], tenant_id: str, key: str, queries: list[str],
    rounds: int,
) -> dict[str, Any]:  # fmt: skip
    """The search figures at this size (one API process, started for them)."""
    times: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
    server: dict[str, list[list[float]]] = {"hybrid": [], "cached": []}
    cpu = {"hybrid": 0.0, "cached": 0.0}
    redis = create_redis_client(settings)
    async with local_api(env, indexer=False) as (url, api):
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http,
            direct_client(settings, tenant_id) as direct,
        ):
            for text_ in queries[:5]:
                for mode in ("hybrid", "bm25", "vector"):
                    await Timings().send(http, {"query": text_, "mode": mode})
                await direct(text_)
            for _ in range(rounds):
                await redis.flushdb()
                before = cpu_seconds(api.pid)  # the API's own CPU (the direct client's is ours)
                hybrid, direct_ms = await paired(http, direct, queries)
                cpu["hybrid"] += cpu_seconds(api.pid) - before
                cached = Timings()
                before = cpu_seconds(api.pid)
                for text_ in queries:
                    await cached.send(http, {"query": text_})
                cpu["cached"] += cpu_seconds(api.pid) - before
                times["hybrid"].append(hybrid.client)
                times["direct"].append(direct_ms)
                times["cached"].append(cached.client)
                server["hybrid"].append(hybrid.server)
                server["cached"].append(cached.server)
                for mode in ("bm25", "vector"):
                    await redis.flushdb()
                    timings = Timings()
                    for text_ in queries:
                        await timings.send(http, {"query": text_, "mode": mode})
                    times[mode].append(timings.client)
        api_rss = peak_rss_mb(api.pid)
    await redis.aclose()
    figures = summarise(times)
    for mode, values in summarise(server).items():
        figures[f"server_{mode}"] = values
    figures["api_peak_rss_mb"] = round(api_rss, 1)
    # CPU seconds of the API process per search: uncached hybrid (query embedding, both
    # searches, fusion, page) and cached (a page from Redis).
    figures["api_cpu_s_per_search"] = round(cpu["hybrid"] / (rounds * len(queries)), 5)
    figures["api_cpu_s_per_cached_search"] = round(cpu["cached"] / (rounds * len(queries)), 5)
    figures["queries"] = len(queries)
    figures["rounds"] = rounds
    return figures


async def export_vectors(settings: Settings, alias: str) -> tuple[list[str], np.ndarray]:
    """Every chunk's id and vector in the index behind ``alias`` (each vector kept as
    float32 as it comes: 150,000 of them as Python floats would take gigabytes)."""
    es = create_es_client(settings)
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    try:
        async for hit in async_scan(
            es, index=alias, query={"query": {"match_all": {}}, "_source": ["embedding"]},
            size=2000,
        ):  # fmt: skip
            ids.append(hit["_id"])
            vectors.append(np.asarray(hit["_source"]["embedding"], dtype=np.float32))
    finally:
        await es.close()
    return ids, np.stack(vectors)


def encode_queries(settings: Settings, queries: list[str]) -> np.ndarray:
    embedder = Embedder.from_settings(settings.embedding)
    embedder.load()
    try:
        return embedder.encode_sync(queries)
    finally:
        embedder.close()


def exact_top(query_vectors: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest by cosine (the vectors are normalised), by brute force."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = query_vectors @ (vectors / np.maximum(norms, 1e-12)).T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


async def knn_recall(
    settings: Settings, alias: str, tenant_id: str, queries: list[str], save_to: Path
) -> dict[str, Any]:
    """Recall@10 (and @window) of the kNN search the API sends (its body, built by the
    same code: k = the rank window, num_candidates, the tenant filter) against exact
    nearest neighbours by numpy over every vector in the index; the vectors are saved to
    ``save_to`` (.npz) for the vector options stage."""
    ids, vectors = await export_vectors(settings, alias)
    np.savez(save_to, ids=np.array(ids), vectors=vectors)
    query_vectors = encode_queries(settings, queries)
    window = settings.search.rank_window
    exact = exact_top(query_vectors, vectors, window)
    position = {chunk_id: i for i, chunk_id in enumerate(ids)}
    es = create_es_client(settings)
    found = []
    try:
        for text_, vector in zip(queries, query_vectors, strict=True):
            plan = search_plan(settings, tenant_id, text_)
            body = q.knn_body(dataclasses.replace(plan, highlight=False), vector.tolist(), window)
            resp = await es.search(index=alias, **body)
            found.append([position[h["_id"]] for h in resp["hits"]["hits"]])
    finally:
        await es.close()
    return {
        "chunks": len(ids),
        "queries": len(queries),
        "k": window,
        "num_candidates": q.candidates(settings.search.num_candidates, window),
        "recall_at_10": round(recall(found, exact, 10), 4),
        f"recall_at_{window}": round(recall(found, exact, window), 4),
        "index_type": settings.es.vector_index_type,
    }


async def vector_options(
    settings: Settings, folder: Path, vectors_file: Path, queries: list[str], es_heap: str
) -> dict[str, Any]:
    """bench/vectors.py's comparison on the corpus's own vectors at its largest size, on
    a one-node stack of its own in ``folder``: per index option, its cost to index, its
    recall@10 against exact search, and the memory its vectors need off the heap."""
    from bench.common import es_pids
    from myaiserv.embeddings.model import ModelInfo

    data = np.load(vectors_file)
    vectors = data["vectors"]
    query_vectors = encode_queries(settings, queries)
    window = settings.search.rank_window
    candidates = q.candidates(settings.search.num_candidates, window)
    exact = exact_top(query_vectors, vectors, window)
    config = private_stack_up(folder, es_heap=es_heap, services=("elasticsearch",))
    es = create_es_client(settings.model_copy(update={"es_url": config.elasticsearch.urls()}))
    info = ModelInfo(settings.embedding.model, int(vectors.shape[1]), 256)
    figures: dict[str, Any] = {"vectors": len(vectors), "queries": len(queries),
                               "k": window, "num_candidates": candidates}  # fmt: skip
    try:
        pids = es_pids(config)
        options = index_options(settings)
        for kind in TYPES:
            field = vector_field(info, dataclasses.replace(options, vector_index_type=kind))
            index = f"benchscalevec-{kind.replace('_', '-')}"
            cost = await index_all(
                es, index, field, vectors, cpu=lambda: sum(cpu_seconds(p) for p in pids)
            )
            memory = await vector_memory(es, index)
            found = await knn_ids(es, index, query_vectors, window, candidates)
            await es.indices.delete(index=index)
            n = max(memory["vectors"], 1)
            # What kNN search reads: the graph and the vectors it compares, the quantised
            # copy where there is one (the floats are then read only to rescore).
            searched = memory["vex_bytes"] + (
                memory["veq_bytes"] or memory["veb_bytes"] or memory["vec_bytes"]
            )
            figures[kind] = {
                "recall_at_10": round(recall(found, exact, 10), 4),
                f"recall_at_{window}": round(recall(found, exact, window), 4),
                "index_es_cpu_s": round(cost["index_es_cpu_s"], 1),
                "index_es_cpu_s_per_vector": round(cost["index_es_cpu_s"] / n, 6),
                "index_seconds": round(cost["index_seconds"], 1),
                "off_heap_bytes": memory["total_bytes"],
                "off_heap_bytes_per_vector": round(memory["total_bytes"] / n, 1),
                "search_memory_bytes_per_vector": round(searched / n, 1),
                **{k: v for k, v in memory.items() if k.endswith("_bytes") and k != "total_bytes"},
            }
            print(f"scale: vectors {kind}: {figures[kind]}", flush=True)
    finally:
        await es.close()
        private_stack_down(folder)
        shutil.rmtree(folder, ignore_errors=True)
    figures["default"] = settings.es.vector_index_type
    return figures
