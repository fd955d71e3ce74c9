"""The sizing plan past this machine: what 10M and 100M chunks need (Elasticsearch shards
and nodes, memory for the vector graphs with and without quantization, disk, indexer
processes for an ingest rate, API instances for a query rate), computed at render time
from the per-chunk costs the benchmarks measured, so the plan always follows the figures.

Every input is labelled with where it comes from: ``measured`` (a key of
bench/results.json, from the largest corpus that has it), ``published`` (Elasticsearch's
own estimate of vector memory, for the index options we did not measure at size) or
``assumed`` (the hardware and the targets of the plan, stated once here). Outputs are
extrapolations: linear in the number of chunks, which holds for disk, vector memory and
encode work, and is a lower bound for Elasticsearch's indexing CPU (HNSW merges grow with
the segment sizes) and for search (more shards per query).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.plots import get

TARGETS = (10_000_000, 100_000_000)
BACKFILL_S = 86_400  # ingest target: the whole corpus in one day
QUERY_RATE = 100  # uncached hybrid searches per second at peak
REPLICAS = 1
# One data node: 16 cores, 64 GiB (a 16 GiB heap, the rest the page cache that HNSW
# needs the vector data in), 2 TiB of SSD filled to at most 80% (below the high watermark).
NODE_CORES, NODE_RAM_GIB, NODE_HEAP_GIB, NODE_DISK_TIB = 16, 64, 16, 2
NODE_CACHE_GIB = NODE_RAM_GIB - NODE_HEAP_GIB - 4  # 4 GiB for the OS and Elasticsearch's own
DISK_FILL = 0.80
SHARD_GIB = 30  # Elastic's guidance: shards of 10 to 50 GB
PROCESS_CORES = 4  # cores per indexer or API process in the plan
CPU_TARGET = 0.7  # plan to this utilisation, not 100%
GIB, TIB = 2**30, 2**40

# Elasticsearch's published estimates of the off-heap memory HNSW search needs per vector
# (docs: "Tune approximate kNN search", Ensure data nodes have enough memory): the
# vectors in the form searched, plus the graph, 4 bytes per link and m links per node.
VECTOR_BYTES = {
    "hnsw": lambda d: d * 4,
    "int8_hnsw": lambda d: d + 4,
    "int4_hnsw": lambda d: d / 2 + 4,
    "bbq_hnsw": lambda d: d / 8 + 14,
}
# Extra disk a quantized option keeps beside the float vectors, which it also stores.
EXTRA_DISK = {"hnsw": 0.0, "int8_hnsw": 0.25, "int4_hnsw": 0.125, "bbq_hnsw": 0.03125}


# What changes in the design at 10M-100M chunks (the section's closing list).
DESIGN_CHANGES = (
    (
        "Quantized vectors by default (`MYAISERV_ES__VECTOR_INDEX_TYPE=int8_hnsw` or "
        "`bbq_hnsw`, with oversampling and rescoring for recall): float HNSW needs the "
        "memory in the table above in page cache, 3.5 (int8) to 13 (bbq) times what the "
        "quantized options need, graph included."
    ),
    (
        "Indices per tenant size: small tenants share an index with `routing` by tenant "
        "(a search touches one shard instead of all; the tenant filter stays in every "
        "query), large tenants get indices of their own behind the same alias scheme."
    ),
    (
        "Runs in time-based indices (a new one per month, rolled over by ILM, old ones "
        "read-only, force-merged, then deleted by retention): runs grow with traffic, not "
        "with the corpus, and are searched mostly by recent time."
    ),
    (
        "Embedding apart from the indexers' claim loop: the indexers are already "
        "stateless and coordinate through PostgreSQL's outbox (`SKIP LOCKED`), so they "
        "scale out as processes; at thousands of chunks/s the encode moves to GPUs or a "
        "batching embedding service, and the outbox is partitioned by hash so claims do "
        "not contend."
    ),
    (
        "PostgreSQL keeps documents, not vectors: it grows with the source text; the "
        "outbox is pruned as it drains, and the console's reads can go to a replica."
    ),
)


@dataclass(frozen=True)
class Input:
    value: float
    source: str  # "measured: <key> (<where>)", "published: ..." or "assumed"


def _first(results: dict[str, Any], *keys: tuple[str, str]) -> Input | None:
    """The first of (key, where) that results has, as a measured input."""
    for key, where in keys:
        value = get(results, key)
        if isinstance(value, int | float) and value > 0:
            return Input(float(value), f"measured: `{key}` ({where})")
    return None


def inputs(results: dict[str, Any]) -> dict[str, Input | None]:
    """The per-chunk and per-request costs, from the largest corpus measured."""
    cores = get(results, "_machine.cores") or 2
    big = f"{get(results, 'scale.max_chunks') or 0:,} chunks"
    encode = _first(results, ("scale.encode_s_per_chunk_core", big))
    if encode is None and (raw := get(results, "ingest.raw_encode_chunks_per_s")):
        encode = Input(
            cores / raw,
            f"measured: {cores} cores / `ingest.raw_encode_chunks_per_s` (CISI's shorter chunks)",
        )
    es_cpu = _first(results, ("scale.es_index_cpu_s_per_chunk", big))
    if es_cpu is None and (cpu := get(results, "vectors.hnsw.index_es_cpu_s")):
        chunks = get(results, "vectors.chunks") or 1
        es_cpu = Input(
            cpu / chunks, "measured: `vectors.hnsw.index_es_cpu_s` / `vectors.chunks` (CISI)"
        )
    api = _first(results, ("scale.api_cpu_s_per_search", big))
    if api is None and (ms := get(results, "tracing.off_cpu_ms_per_request")):
        api = Input(
            ms / 1000, "measured: `tracing.off_cpu_ms_per_request` / 1000 (CISI, uncached hybrid)"
        )
    return {
        "dims": Input(float(get(results, "scale.dims") or 384), "the model (all-MiniLM-L6-v2)"),
        "hnsw_m": Input(16.0, "the mapping's `m` (myaiserv/search/indices.py)"),
        "disk_per_chunk": _first(results, ("scale.es_disk_bytes_per_chunk", big)),
        "heap_per_chunk": _first(results, ("scale.es_heap_bytes_per_chunk", big)),
        "encode_s_per_chunk_core": encode,
        "es_index_cpu_s_per_chunk": es_cpu,
        "api_cpu_s_per_search": api,
    }


def vector_memory(chunks: int, dims: float, m: float, option: str) -> float:
    """Bytes of page cache one copy of ``chunks`` vectors needs to be searched fast, by
    Elasticsearch's published estimate."""
    return chunks * (VECTOR_BYTES[option](dims) + 4 * m)


def measured_vector_bytes(results: dict[str, Any], option: str) -> float | None:
    """Bytes per vector that kNN search read from memory for ``option`` at the scale
    benchmark's size (the graph and the vectors it compares), where it was measured."""
    value = get(results, f"scale.vectors.{option}.search_memory_bytes_per_vector")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def plan(results: dict[str, Any], chunks: int) -> dict[str, Any]:
    """What ``chunks`` chunks need; a key is missing where its inputs were not measured."""
    i = inputs(results)
    dims, m = i["dims"].value, i["hnsw_m"].value  # type: ignore[union-attr]
    copies = 1 + REPLICAS
    out: dict[str, Any] = {"chunks": chunks, "copies": copies}
    out["vector_gib"] = {}
    for option in VECTOR_BYTES:
        per_vector = measured_vector_bytes(results, option)
        one_copy = (
            vector_memory(chunks, dims, m, option) if per_vector is None else chunks * per_vector
        )
        out["vector_gib"][option] = one_copy * copies / GIB
    nodes_for = {}
    if (disk := i["disk_per_chunk"]) is not None:
        primary = chunks * disk.value
        out["primary_gib"] = primary / GIB
        out["disk_tib"] = primary * copies / TIB
        out["primary_shards"] = max(1, math.ceil(primary / (SHARD_GIB * GIB)))
        nodes_for["disk"] = math.ceil(primary * copies / (NODE_DISK_TIB * TIB * DISK_FILL))
    for option in ("hnsw", "int8_hnsw", "bbq_hnsw"):
        nodes_for[f"vectors ({option})"] = math.ceil(out["vector_gib"][option] / NODE_CACHE_GIB)
    rate = chunks / BACKFILL_S
    out["ingest_chunks_per_s"] = rate
    if (encode := i["encode_s_per_chunk_core"]) is not None:
        out["encode_cores"] = rate * encode.value / CPU_TARGET
        out["indexer_processes"] = math.ceil(out["encode_cores"] / PROCESS_CORES)
    if (es_cpu := i["es_index_cpu_s_per_chunk"]) is not None:
        # Every copy indexes the document itself (replicas re-run the analysis and the
        # HNSW insert), so the cost is per copy.
        out["es_index_cores"] = rate * es_cpu.value * copies / CPU_TARGET
        nodes_for["indexing CPU"] = math.ceil(out["es_index_cores"] / NODE_CORES)
    if (api := i["api_cpu_s_per_search"]) is not None:
        out["api_cores"] = QUERY_RATE * api.value / CPU_TARGET
        out["api_instances"] = max(2, math.ceil(out["api_cores"] / PROCESS_CORES))
    if (heap := i["heap_per_chunk"]) is not None:
        out["heap_gib"] = chunks * heap.value * copies / GIB
    out["nodes_for"] = nodes_for
    # The smallest cluster that holds the data with the default vectors quantized to int8
    # (the option the plan recommends at this size), never fewer than 3 (a quorum).
    needs = [v for k, v in nodes_for.items() if not k.startswith("vectors") or "int8" in k]
    out["data_nodes"] = max(3, *needs)
    return out


def _gib(v: float) -> str:
    return f"{v / 1024:,.1f} TiB" if v >= 1024 else f"{v:,.0f} GiB"


def section(results: dict[str, Any]) -> list[str]:
    i = inputs(results)
    if i["disk_per_chunk"] is None and i["encode_s_per_chunk_core"] is None:
        return []
    plans = [plan(results, n) for n in TARGETS]
    largest = f"{get(results, 'scale.max_chunks') or get(results, 'ingest.chunks') or 0:,}"
    heads = " | ".join(f"{n // 1_000_000}M chunks" for n in TARGETS)
    sep = " | ".join("---" for _ in TARGETS)

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(p) for p in plans) + " |"

    def opt(key: str, fmt: str) -> Any:
        return lambda p: fmt.format(p[key]) if key in p else "not measured"

    lines = [
        "## Sizing plan past this machine",
        "",
        (
            f"What {' and '.join(f'{n:,}' for n in TARGETS)} chunks need, computed from the "
            "per-chunk costs below (a table rendered from bench/results.json, so it follows "
            f"the last run). Plan: {REPLICAS} replica; the whole corpus ingested in "
            f"{BACKFILL_S // 3600} h; {QUERY_RATE} uncached hybrid searches/s at peak; data "
            f"nodes of {NODE_CORES} cores, {NODE_RAM_GIB} GiB ({NODE_HEAP_GIB} GiB heap, "
            f"{NODE_CACHE_GIB} GiB page cache) and {NODE_DISK_TIB} TiB SSD filled to "
            f"{DISK_FILL:.0%}; processes of {PROCESS_CORES} cores at {CPU_TARGET:.0%} CPU; "
            f"shards of about {SHARD_GIB} GiB."
        ),
        "",
        "| per-chunk cost | value | source |",
        "| --- | --- | --- |",
    ]
    labels = {
        "dims": ("vector dimensions", "{:.0f}"),
        "hnsw_m": ("HNSW links per node (m)", "{:.0f}"),
        "disk_per_chunk": ("Elasticsearch disk per chunk, one copy (bytes)", "{:,.0f}"),
        "heap_per_chunk": ("Elasticsearch heap per chunk (bytes)", "{:,.1f}"),
        "encode_s_per_chunk_core": ("encode CPU per chunk (core-seconds)", "{:.4f}"),
        "es_index_cpu_s_per_chunk": (
            "Elasticsearch indexing CPU per chunk, one copy (core-seconds)",
            "{:.4f}",
        ),
        "api_cpu_s_per_search": (
            "API CPU per uncached hybrid search (core-seconds)",
            "{:.4f}",
        ),
    }
    for key, (label, fmt) in labels.items():
        value = i[key]
        lines.append(
            f"| {label} | {fmt.format(value.value)} | {value.source} |"
            if value
            else f"| {label} | - | not measured yet |"
        )
    lines += [
        "",
        f"| extrapolated need | {heads} |",
        f"| --- | {sep} |",
        row("Elasticsearch disk, all copies", opt("disk_tib", "{:,.2f} TiB")),
        row("primary shards", opt("primary_shards", "{}")),
        *(
            row(
                f"vector memory, all copies, `{option}` ("
                + (
                    "measured per vector"
                    if measured_vector_bytes(results, option)
                    else "published estimate"
                )
                + ")",
                lambda p, o=option: _gib(p["vector_gib"][o]),
            )
            for option in VECTOR_BYTES
        ),
        row("heap for the data, all copies", opt("heap_gib", "{:,.1f} GiB")),
        row("ingest rate for the backfill (chunks/s)", opt("ingest_chunks_per_s", "{:,.0f}")),
        row("cores to encode at that rate", opt("encode_cores", "{:,.1f}")),
        row(f"indexer processes ({PROCESS_CORES} cores)", opt("indexer_processes", "{:,}")),
        row("Elasticsearch cores to index at that rate", opt("es_index_cores", "{:,.1f}")),
        row(
            f"API instances ({PROCESS_CORES} cores) for {QUERY_RATE}/s",
            opt("api_instances", "{}"),
        ),
        row(
            "data nodes needed for ...",
            lambda p: ", ".join(f"{k}: {v}" for k, v in p["nodes_for"].items()),
        ),
        row("data nodes (int8 vectors, at least 3)", opt("data_nodes", "**{}**")),
        "",
        "What is measured and what is not: the per-chunk costs are measured on this "
        "machine (their keys above); everything in the second table is extrapolated "
        "linearly from them. Vector memory is the bytes per vector kNN search read at the "
        "scale benchmark's size (`scale.vectors.<option>.search_memory_bytes_per_vector`: "
        "the graph and the vectors compared) where that option was measured, else "
        "Elasticsearch's published estimate (vectors plus 4 bytes x m graph links per "
        "vector); disk is the "
        "measured store size per chunk with the index option the benchmark ran, and a "
        "quantized option adds its quantized copy on disk ("
        + ", ".join(f"`{k}` +{v:.1%}" for k, v in EXTRA_DISK.items() if v)
        + " of the vector data). Elasticsearch's indexing CPU is a lower bound at this "
        "size (merging larger HNSW segments costs more per vector), and the search side "
        "of Elasticsearch (CPU per query across more shards) was not measured beyond "
        f"{largest} chunks: the API figure is the API "
        "process's own CPU (query embedding, fusion, hits), which does not grow with the "
        "corpus.",
        "",
        "What changes in the design at this size:",
        "",
        *(f"- {change}" for change in DESIGN_CHANGES),
        "",
    ]
    return lines
