"""The peers, measured in their own environment (bench/peers/.venv: their Elasticsearch
integrations need the 8.x client, MyAIServ the 9.x one): LangChain's `ElasticsearchStore`
(langchain-elasticsearch) and Haystack's `ElasticsearchDocumentStore`
(elasticsearch-haystack) with its sentence-transformers embedders.

    python bench/peers/run.py INPUT.json OUTPUT.json

INPUT: {"es_url", "prefix", "model" (a local sentence-transformers folder), "chunks":
[{"id", "text"}], "queries": [{"id", "text"}], "depth", "batch_size"}. For each peer:
ingest the chunks (embedding + bulk writes, timed, the peer's documented way), then run
every query through its BM25, embedding and hybrid retrievers (ranked chunk ids, and
each call's latency). OUTPUT: the same per peer. No network beyond the given cluster.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elasticsearch import Elasticsearch

WARMUP = 3


def no_root_endpoint() -> None:
    """Both peers test their connection with ``GET /`` (``info()``), which lives in
    Elasticsearch's ``rest-root`` module; the local integ-test distribution has only the
    core modules, so that route answers 405. Production clusters have it. Here the
    connection test asks the cluster's health instead (a real round trip)."""
    Elasticsearch.info = lambda self, **_: self.cluster.health()  # type: ignore[method-assign]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def measure(
    queries: list[dict[str, str]], search: Callable[[str, int], list[str]], depth: int
) -> dict[str, Any]:
    """Rankings ``depth`` deep (for relevance), then every query again with k=10, timed
    in-process after a warm-up (latency as an application would see it)."""
    rankings = {q["id"]: search(q["text"], depth) for q in queries}
    for q in queries[:WARMUP]:
        search(q["text"], 10)
    latencies: list[float] = []
    for q in queries:
        started = time.perf_counter()
        search(q["text"], 10)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "rankings": rankings,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "rps_sequential": round(len(latencies) / (sum(latencies) / 1000), 1),
    }


def fresh(es: Elasticsearch, index: str) -> None:
    es.options(ignore_status=404).indices.delete(index=index)


def langchain(cfg: dict[str, Any], es: Elasticsearch) -> dict[str, Any]:
    from langchain_elasticsearch import BM25Strategy, DenseVectorStrategy, ElasticsearchStore
    from langchain_huggingface import HuggingFaceEmbeddings

    index = f"{cfg['prefix']}-langchain"
    fresh(es, index)
    embeddings = HuggingFaceEmbeddings(
        model_name=cfg["model"],
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={"batch_size": cfg["batch_size"]},
    )
    embeddings.embed_query("warm up")
    store = ElasticsearchStore(
        index_name=index, embedding=embeddings, es_url=cfg["es_url"], strategy=DenseVectorStrategy()
    )
    chunks = cfg["chunks"]
    started = time.perf_counter()
    store.add_texts(
        [c["text"] for c in chunks],
        metadatas=[{"chunk_id": c["id"]} for c in chunks],
        ids=[c["id"] for c in chunks],
        bulk_kwargs={"chunk_size": 500},
    )
    seconds = time.perf_counter() - started
    depth = cfg["depth"]
    out: dict[str, Any] = {
        "ingest": {
            "chunks": len(chunks),
            "seconds": round(seconds, 2),
            "chunks_per_s": round(len(chunks) / seconds, 1),
        },
        "retrievers": {},
        "notes": [],
    }

    def ids(docs: list[Any]) -> list[str]:
        return [d.metadata.get("chunk_id") or d.id for d in docs]

    bm25 = ElasticsearchStore(index_name=index, es_url=cfg["es_url"], strategy=BM25Strategy())
    queries = cfg["queries"]
    out["retrievers"]["bm25"] = measure(
        queries, lambda q, k: ids(bm25.similarity_search(q, k=k)), depth
    )
    out["retrievers"]["vector"] = measure(
        queries, lambda q, k: ids(store.similarity_search(q, k=k, fetch_k=max(50, k))), depth
    )
    hybrid = ElasticsearchStore(
        index_name=index,
        embedding=embeddings,
        es_url=cfg["es_url"],
        strategy=DenseVectorStrategy(hybrid=True, text_field="text"),
    )
    try:
        out["retrievers"]["hybrid"] = measure(
            queries, lambda q, k: ids(hybrid.similarity_search(q, k=k, fetch_k=max(50, k))), depth
        )
    except Exception as exc:
        out["notes"].append(
            f"hybrid (Elasticsearch RRF retriever) failed here: {type(exc).__name__}: "
            f"{str(exc)[:200]}; measured with rrf=False (bool query: BM25 + kNN scores summed)"
        )
        summed = ElasticsearchStore(
            index_name=index,
            embedding=embeddings,
            es_url=cfg["es_url"],
            strategy=DenseVectorStrategy(hybrid=True, rrf=False, text_field="text"),
        )
        out["retrievers"]["hybrid"] = measure(
            queries, lambda q, k: ids(summed.similarity_search(q, k=k, fetch_k=max(50, k))), depth
        )
    return out


def haystack(cfg: dict[str, Any], es: Elasticsearch) -> dict[str, Any]:
    from haystack import Document
    from haystack.document_stores.types import DuplicatePolicy
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from haystack_integrations.components.retrievers.elasticsearch import (
        ElasticsearchBM25Retriever,
        ElasticsearchEmbeddingRetriever,
        ElasticsearchHybridRetriever,
    )
    from haystack_integrations.document_stores.elasticsearch import ElasticsearchDocumentStore

    index = f"{cfg['prefix']}-haystack"
    fresh(es, index)
    store = ElasticsearchDocumentStore(hosts=cfg["es_url"], index=index, request_timeout=120)
    common = {"model": cfg["model"], "local_files_only": True, "progress_bar": False}
    doc_embedder = SentenceTransformersDocumentEmbedder(**common, batch_size=cfg["batch_size"])
    text_embedder = SentenceTransformersTextEmbedder(**common)
    doc_embedder.warm_up()
    text_embedder.warm_up()
    chunks = cfg["chunks"]
    started = time.perf_counter()
    documents = [Document(id=c["id"], content=c["text"]) for c in chunks]
    embedded = doc_embedder.run(documents=documents)["documents"]
    store.write_documents(embedded, policy=DuplicatePolicy.OVERWRITE)
    es.indices.refresh(index=index)
    seconds = time.perf_counter() - started
    depth = cfg["depth"]
    bm25 = ElasticsearchBM25Retriever(document_store=store)
    # The default kNN candidates are top_k * 10: more than Elasticsearch's 10,000 at the
    # relevance depth, so that run asks for the most allowed (the k=10 runs keep defaults).
    deep = {"num_candidates": 10_000}

    def extra(k: int) -> dict[str, Any]:
        return deep if k * 10 > 10_000 else {}

    dense = {
        k: ElasticsearchEmbeddingRetriever(document_store=store, **extra(k)) for k in (10, depth)
    }

    def hybrid_retriever(k: int) -> ElasticsearchHybridRetriever:
        # It runs its embedder in a pipeline of its own: one embedder per retriever.
        embedder = SentenceTransformersTextEmbedder(**common)
        embedder.warm_up()
        return ElasticsearchHybridRetriever(
            document_store=store,
            embedder=embedder,
            top_k_bm25=k,
            top_k_embedding=k,
            top_k=k,
            **extra(k),
        )

    hybrids = {k: hybrid_retriever(k) for k in (10, depth)}

    def ids(result: dict[str, Any]) -> list[str]:
        return [d.id for d in result["documents"]]

    def vector(q: str, k: int) -> list[str]:
        embedding = text_embedder.run(text=q)["embedding"]
        return ids(dense[k].run(query_embedding=embedding, top_k=k))

    queries = cfg["queries"]

    return {
        "ingest": {
            "chunks": len(chunks),
            "seconds": round(seconds, 2),
            "chunks_per_s": round(len(chunks) / seconds, 1),
        },
        "retrievers": {
            "bm25": measure(queries, lambda q, k: ids(bm25.run(query=q, top_k=k)), depth),
            "vector": measure(queries, vector, depth),
            "hybrid": measure(queries, lambda q, k: ids(hybrids[k].run(query=q)), depth),
        },
        "notes": [],
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    no_root_endpoint()
    es = Elasticsearch(cfg["es_url"], request_timeout=120)
    out: dict[str, Any] = {}
    for name, peer in (("langchain", langchain), ("haystack", haystack)):
        try:
            out[name] = peer(cfg, es)
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        finally:
            fresh(es, f"{cfg['prefix']}-{name}")
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
