"""The peers, measured in their own environment (bench/peers/.venv: their Elasticsearch
integrations need the 8.x client, MyAIServ the 9.x one): LangChain's `ElasticsearchStore`
(langchain-elasticsearch) and Haystack's `ElasticsearchDocumentStore`
(elasticsearch-haystack) with its sentence-transformers embedders.

    python bench/peers/run.py ingest PEER INPUT.json OUTPUT.json
    python bench/peers/run.py search PEER INPUT.json OUTPUT.json
    python bench/peers/run.py encode sentence-transformers INPUT.json OUTPUT.json

Every INPUT has "es_url", "index", "model" (a local sentence-transformers folder),
"backend" ("torch", the peers' default, or "onnx-int8": the ONNX file MyAIServ runs,
"onnx_file", loaded through sentence-transformers' documented ONNX backend), "threads"
(what the backend computes with; 0 = its default) and "analyzer" (null: the peer's
default, Elasticsearch's `standard`; "english": Elasticsearch's English analyzer;
"english_stop": English stop words without stemming, for clusters without language
analyzers), given through the peer's own index options (``ANALYZERS``).
ingest: INPUT also {"chunks": [{"id", "text"}], "batch_size"}; the peer writes the chunks
into a fresh ``index`` its documented way (embedding + bulk writes), timed from the call
until the index is refreshed (searchable). The index is left for ``search``.
search: INPUT also {"queries": [{"id", "text"}], "depth", "timed": [texts]}: every query
through the peer's BM25, embedding and hybrid retrievers, ranked chunk ids ``depth`` deep
(0: none); then every ``timed`` text again with k=10, timed (latency as an application
calling it sees it).
encode: INPUT as for ingest; one ``SentenceTransformer.encode`` of every chunk text after
a warm-up: the encoder both peers call, alone (their limit on the backend).
OUTPUT: the figures, with the backend, its threads and the process's own peak RSS. No
network beyond the given cluster.

Both peers live in this one file, each set up its documented way, so that what they are
given (backend, threads, analyzer) can be read side by side and is the same for both.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elasticsearch import Elasticsearch

WARMUP = 5  # as MyAIServ's search benchmark
Search = Callable[[str, int], list[str]]


def no_root_endpoint() -> None:
    """Both peers test their connection with ``GET /`` (``info()``), which lives in
    Elasticsearch's ``rest-root`` module; the local integ-test distribution has only the
    core modules, so that route answers 405. Production clusters have it. Here the
    connection test asks the cluster's health instead (a real round trip)."""
    Elasticsearch.info = lambda self, **_: self.cluster.health()  # type: ignore[method-assign]


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM), as MyAIServ's processes are measured.
    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: on Linux that survives exec, so a child
    started by a larger process (the benchmark) reports the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status (Linux only)")


# -- The embedding backend, the same for both peers -------------------------------------

ONNX_NAME = "onnx/model_int8.onnx"
# One set of backend arguments per process: Haystack keeps one model per distinct set of
# arguments, and fresh ONNX session options would make every embedder load its own copy.
_BACKEND: list[tuple[str, dict[str, Any]]] = []


def sentence_transformer(cfg: dict[str, Any], work: Path) -> tuple[str, dict[str, Any]]:
    """(model folder, SentenceTransformer keyword arguments) for ``cfg``'s backend, with
    ``cfg["threads"]`` threads (0: the backend's default). On onnx-int8: sentence-
    transformers' ONNX backend (Optimum, ONNX Runtime) runs MyAIServ's own int8 file,
    which it reads from the model folder: a folder of links to the model's files and to
    that file."""
    if _BACKEND:
        return _BACKEND[0]
    threads = int(cfg.get("threads") or 0)
    if cfg.get("backend", "torch") == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
        _BACKEND.append((cfg["model"], {}))
        return _BACKEND[0]
    import onnxruntime as ort

    folder = work / "model"
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    for f in Path(cfg["model"]).iterdir():
        if not (folder / f.name).exists():
            (folder / f.name).symlink_to(f)
    if not (folder / ONNX_NAME).exists():
        (folder / ONNX_NAME).symlink_to(cfg["onnx_file"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    kwargs = {
        "backend": "onnx",
        "model_kwargs": {
            "file_name": ONNX_NAME,
            "provider": "CPUExecutionProvider",
            "session_options": options,
        },
    }
    _BACKEND.append((str(folder), kwargs))
    return _BACKEND[0]


def backend_threads(cfg: dict[str, Any]) -> int:
    """The threads the run's backend computed with."""
    if cfg.get("backend", "torch") == "torch":
        import torch

        return int(torch.get_num_threads())
    # ONNX Runtime's default (0) is one thread per physical core.
    return int(cfg.get("threads") or os.cpu_count() or 1)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def measure(
    queries: list[dict[str, str]], timed: list[str], search: Search, depth: int
) -> dict[str, Any]:
    """Rankings ``depth`` deep (for relevance; none at 0), then every ``timed`` text with
    k=10, timed in-process after a warm-up, one caller (latency as an application would
    see it)."""
    out: dict[str, Any] = {}
    if depth:
        out["rankings"] = {q["id"]: search(q["text"], depth) for q in queries}
    if timed:
        for text in timed[:WARMUP]:
            search(text, 10)
        latencies: list[float] = []
        for text in timed:
            started = time.perf_counter()
            search(text, 10)
            latencies.append((time.perf_counter() - started) * 1000)
        out |= {
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "rps_1": round(len(latencies) / (sum(latencies) / 1000), 1),
        }
    return out


# -- The BM25 field's analysis -----------------------------------------------------------

# What each peer's index options can give (analysis, and what to call it in the report).
# LangChain's (index settings) can define an analyzer of any type the cluster has as the
# index default; Haystack's (a mapping) can only name one the cluster has built in: on a
# cluster without analysis-common (the integ-test distribution) that is `stop`, whose
# letter tokenizer drops digits, where LangChain's `standard` + stop words keeps them.
ANALYZERS: dict[str, dict[str, tuple[Any, str]]] = {
    "langchain": {
        "english": ({"type": "english"}, "english"),
        "english_stop": (
            {"type": "standard", "stopwords": "_english_"},
            "standard, English stop words",
        ),
    },
    "haystack": {
        "english": ("english", "english"),
        "english_stop": ("stop", "stop (letters, English stop words)"),
    },
}


# -- LangChain ---------------------------------------------------------------------------


def langchain_embeddings(cfg: dict[str, Any], work: Path) -> Any:
    from langchain_huggingface import HuggingFaceEmbeddings

    # model_kwargs go to SentenceTransformer as they are (the backend's included).
    model, backend = sentence_transformer(cfg, work)
    embeddings = HuggingFaceEmbeddings(
        model_name=model,
        model_kwargs={"device": "cpu", "local_files_only": True, **backend},
        encode_kwargs={"batch_size": cfg.get("batch_size", 32)},
    )
    embeddings.embed_query("warm up")
    return embeddings


def langchain_index_settings(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """Elasticsearch's index settings, through ``custom_index_settings``: the analyzer
    named ``default`` is every text field's, the BM25 field's included."""
    if not cfg.get("analyzer"):
        return None
    return {"analysis": {"analyzer": {"default": ANALYZERS["langchain"][cfg["analyzer"]][0]}}}


def langchain_ingest(cfg: dict[str, Any], work: Path) -> Callable[[], None]:
    from langchain_elasticsearch import DenseVectorStrategy, ElasticsearchStore

    store = ElasticsearchStore(
        index_name=cfg["index"],
        embedding=langchain_embeddings(cfg, work),
        es_url=cfg["es_url"],
        strategy=DenseVectorStrategy(),
        custom_index_settings=langchain_index_settings(cfg),
    )
    chunks = cfg["chunks"]

    def ingest() -> None:
        store.add_texts(
            [c["text"] for c in chunks],
            metadatas=[{"chunk_id": c["id"]} for c in chunks],
            ids=[c["id"] for c in chunks],
            bulk_kwargs={"chunk_size": 500},
        )

    return ingest


def langchain_search(cfg: dict[str, Any], work: Path) -> tuple[dict[str, Search], list]:
    from langchain_elasticsearch import BM25Strategy, DenseVectorStrategy, ElasticsearchStore

    embeddings = langchain_embeddings(cfg, work)
    index, url = cfg["index"], cfg["es_url"]

    def ids(docs: list[Any]) -> list[str]:
        return [d.metadata.get("chunk_id") or d.id for d in docs]

    def searcher(store: Any) -> Search:
        return lambda q, k: ids(store.similarity_search(q, k=k, fetch_k=max(50, k)))

    bm25 = ElasticsearchStore(index_name=index, es_url=url, strategy=BM25Strategy())
    dense = ElasticsearchStore(
        index_name=index, embedding=embeddings, es_url=url, strategy=DenseVectorStrategy()
    )
    notes: list[str] = []
    hybrid = searcher(
        ElasticsearchStore(
            index_name=index,
            embedding=embeddings,
            es_url=url,
            strategy=DenseVectorStrategy(hybrid=True, text_field="text"),
        )
    )
    try:
        hybrid("retrieval", 10)
    except Exception as exc:  # noqa: BLE001 - the peer's own errors, reported as a note
        # Its hybrid is Elasticsearch's RRF retriever, which this cluster lacks (the
        # integ-test distribution has no rank-rrf module): the other hybrid it offers.
        notes.append(
            f"hybrid (Elasticsearch RRF retriever) failed here: {type(exc).__name__}: "
            f"{str(exc)[:160]}; measured with rrf=False (BM25 + kNN scores summed)"
        )
        hybrid = searcher(
            ElasticsearchStore(
                index_name=index,
                embedding=embeddings,
                es_url=url,
                strategy=DenseVectorStrategy(hybrid=True, rrf=False, text_field="text"),
            )
        )
    return {"bm25": searcher(bm25), "vector": searcher(dense), "hybrid": hybrid}, notes


# -- Haystack ----------------------------------------------------------------------------


def haystack_mapping(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The store's default mapping (elasticsearch-haystack 7) with the content field's
    analyzer, through ``custom_mapping``: its only index option, so only an analyzer the
    cluster has built in can be named."""
    if not cfg.get("analyzer"):
        return None
    return {
        "properties": {
            "embedding": {"type": "dense_vector", "index": True, "similarity": "cosine"},
            "content": {"type": "text", "analyzer": ANALYZERS["haystack"][cfg["analyzer"]][0]},
        },
        "dynamic_templates": [
            {
                "strings": {
                    "path_match": "*",
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword"},
                }
            }
        ],
    }


def haystack_store(cfg: dict[str, Any]) -> Any:
    from haystack_integrations.document_stores.elasticsearch import ElasticsearchDocumentStore

    return ElasticsearchDocumentStore(
        hosts=cfg["es_url"],
        index=cfg["index"],
        custom_mapping=haystack_mapping(cfg),
        request_timeout=120,
    )


def haystack_common(cfg: dict[str, Any], work: Path) -> dict[str, Any]:
    model, backend = sentence_transformer(cfg, work)
    return {"model": model, "local_files_only": True, "progress_bar": False, **backend}


def haystack_ingest(cfg: dict[str, Any], work: Path) -> Callable[[], None]:
    from haystack import Document
    from haystack.document_stores.types import DuplicatePolicy
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
    )

    store = haystack_store(cfg)
    embedder = SentenceTransformersDocumentEmbedder(
        **haystack_common(cfg, work), batch_size=cfg.get("batch_size", 32)
    )
    embedder.warm_up()
    embedder.run(documents=[Document(content="warm up")])
    chunks = cfg["chunks"]

    def ingest() -> None:
        documents = [Document(id=c["id"], content=c["text"]) for c in chunks]
        embedded = embedder.run(documents=documents)["documents"]
        store.write_documents(embedded, policy=DuplicatePolicy.OVERWRITE)

    return ingest


def haystack_search(cfg: dict[str, Any], work: Path) -> tuple[dict[str, Search], list]:
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersTextEmbedder,
    )
    from haystack_integrations.components.retrievers.elasticsearch import (
        ElasticsearchBM25Retriever,
        ElasticsearchEmbeddingRetriever,
        ElasticsearchHybridRetriever,
    )

    store = haystack_store(cfg)
    sizes = sorted({10, cfg["depth"]} - {0})

    def text_embedder() -> Any:
        embedder = SentenceTransformersTextEmbedder(**haystack_common(cfg, work))
        embedder.warm_up()
        return embedder

    # The default kNN candidates are top_k * 10: more than Elasticsearch's 10,000 at the
    # relevance depth, so that run asks for the most allowed (k=10 keeps the defaults).
    def extra(k: int) -> dict[str, Any]:
        return {"num_candidates": 10_000} if k * 10 > 10_000 else {}

    query_embedder = text_embedder()
    bm25 = ElasticsearchBM25Retriever(document_store=store)
    dense = {k: ElasticsearchEmbeddingRetriever(document_store=store, **extra(k)) for k in sizes}
    # The hybrid retriever runs its embedder in a pipeline of its own: one per retriever.
    hybrids = {
        k: ElasticsearchHybridRetriever(
            document_store=store,
            embedder=text_embedder(),
            top_k_bm25=k,
            top_k_embedding=k,
            top_k=k,
            **extra(k),
        )
        for k in sizes
    }

    def ids(result: dict[str, Any]) -> list[str]:
        return [d.id for d in result["documents"]]

    def vector(q: str, k: int) -> list[str]:
        embedding = query_embedder.run(text=q)["embedding"]
        return ids(dense[k].run(query_embedding=embedding, top_k=k))

    return {
        "bm25": lambda q, k: ids(bm25.run(query=q, top_k=k)),
        "vector": vector,
        "hybrid": lambda q, k: ids(hybrids[k].run(query=q)),
    }, []


PEERS = {
    "langchain": (langchain_ingest, langchain_search),
    "haystack": (haystack_ingest, haystack_search),
}


def ingest(peer: str, cfg: dict[str, Any], es: Elasticsearch, work: Path) -> dict[str, Any]:
    es.options(ignore_status=404).indices.delete(index=cfg["index"])
    run = PEERS[peer][0](cfg, work)  # model loaded and warmed up: not timed
    started = time.perf_counter()
    run()
    es.indices.refresh(index=cfg["index"])
    seconds = time.perf_counter() - started
    count = int(es.count(index=cfg["index"])["count"])
    if count != len(cfg["chunks"]):
        raise SystemExit(f"{peer}: {count} chunks in the index, {len(cfg['chunks'])} written")
    return {"chunks": count, "seconds": round(seconds, 2), "chunks_per_s": count / seconds}


def search(peer: str, cfg: dict[str, Any], es: Elasticsearch, work: Path) -> dict[str, Any]:
    searches, notes = PEERS[peer][1](cfg, work)
    retrievers = {
        mode: measure(cfg["queries"], cfg.get("timed", []), fn, cfg["depth"])
        for mode, fn in searches.items()
    }
    return {"retrievers": retrievers, "notes": notes}


def encode(_: str, cfg: dict[str, Any], es: Elasticsearch, work: Path) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    folder, backend = sentence_transformer(cfg, work)
    model = SentenceTransformer(folder, device="cpu", local_files_only=True, **backend)
    texts = [c["text"] for c in cfg["chunks"]]
    model.encode(texts[:64], batch_size=cfg["batch_size"])  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=cfg["batch_size"])
    seconds = time.perf_counter() - started
    cps = len(texts) / seconds
    return {"chunks": len(texts), "seconds": round(seconds, 2), "chunks_per_s": cps}


def main() -> None:
    command, peer, source, target = sys.argv[1:5]
    with open(source) as f:
        cfg = json.load(f)
    no_root_endpoint()
    es = Elasticsearch(cfg["es_url"], request_timeout=120)
    with tempfile.TemporaryDirectory(prefix="myaiserv-peer-") as work:
        run = {"ingest": ingest, "search": search, "encode": encode}[command]
        out = run(peer, cfg, es, Path(work))
    out |= {
        "backend": cfg.get("backend", "torch"),
        "threads": backend_threads(cfg),
        "analyzer": ANALYZERS[peer][cfg["analyzer"]][1] if cfg.get("analyzer") else "standard",
        "batch_size": cfg.get("batch_size", 32),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    with open(target, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
