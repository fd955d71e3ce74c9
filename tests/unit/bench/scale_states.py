"""States of the scale benchmark's stages, as it saves them, for the figures' and the
report's tests."""

from __future__ import annotations

from typing import Any


def portion(index: int, chunks: int, new: int, start: float, phase: str = "cold") -> dict[str, Any]:
    """A portion's state as the benchmark keeps it: 25 chunks/s end to end (the model's
    counter moving steadily, chunks searchable 5,000 at a time), 250 from cached vectors
    (the written count moving); ``start`` on the ingest clock."""
    rate = 25.0 if phase == "cold" else 250.0
    seconds = new / rate
    base = chunks - new

    def sample(t: float) -> list[float]:
        done = min(new, rate * t)
        searchable = base + (new if t >= seconds else 5000 * (done // 5000))
        embedded = base + (done if phase == "cold" else 0)
        return [start + t, searchable, 0, 300.0, 500.0, embedded, base + done]

    return {
        "index": index, "phase": phase, "documents": new // 20, "failed": 0,
        "chunks_expected": new, "chunks": chunks, "new_chunks": new,
        "store_s": 5.0, "searchable_s": seconds, "backlog_s": seconds - 5,
        "es_cpu_s": new * 0.004, "indexer_cpu_s": new * 0.07, "storer_cpu_s": new * 0.001,
        "storer_peak_rss_mb": 400.0, "live_heap_bytes": 200 * 2**20 + chunks * 100,
        "heap_before_gc_bytes": 400 * 2**20,
        "disk_primary_bytes": chunks * 6000,
        "disk_bytes": chunks * 6000 * (2 if phase == "warm" else 1),
        "dead_letters": 0,
        "samples": [*(sample(t) for t in range(0, int(seconds), 30)), sample(seconds)],
    }  # fmt: skip


def point(chunks: int) -> dict[str, Any]:
    figures = {"chunks": chunks, "api_peak_rss_mb": 350.0, "queries": 30, "rounds": 2,
               "es_disk_bytes": chunks * 6000, "es_disk_primary_bytes": chunks * 6000,
               "es_live_heap_bytes": 2**28}  # fmt: skip
    for mode, ms in (("bm25", 8), ("vector", 20), ("hybrid", 45), ("cached", 3), ("direct", 35)):
        figures |= {f"{mode}_p50_ms": ms, f"{mode}_p99_ms": 2 * ms,
                    f"{mode}_p50_min_ms": ms - 1, f"{mode}_p50_max_ms": ms + 1}  # fmt: skip
    return figures | {"server_cached_p50_ms": 1.5, "api_cpu_s_per_search": 0.02,
                      "api_cpu_s_per_cached_search": 0.002}  # fmt: skip


STATES: dict[str, dict[str, Any]] = {
    "single": {
        "selection": "abc", "complete": True, "indexer_peak_rss_mb": 900.0,
        "portions": [portion(0, 2010, 2010, 0), portion(1, 20100, 18090, 80.4),
                     portion(2, 40000, 19900, 804)],
        "points": {"2000": point(2010), "20000": point(20100), "40000": point(40000)},
        "recall": {"chunks": 40000, "queries": 30, "k": 100, "num_candidates": 100,
                   "recall_at_10": 0.98, "recall_at_100": 0.97, "index_type": "hnsw"},
        "encode": {"chunks": 256, "cores": 2, "s_per_chunk_one_core": 0.07,
                   "s_per_chunk_all_cores": 0.038, "backend": "onnx-int8",
                   "dims": 384},
    },
    "cluster": {
        "selection": "abc", "complete": True, "indexer_peak_rss_mb": 950.0,
        "portions": [portion(0, 2010, 2010, 0), portion(1, 20100, 18090, 80.4),
                     portion(2, 40000, 19900, 804, "warm")],
        "points": {"2000": point(2010), "20000": point(20100), "40000": point(40000)},
    },
    "vectors": {
        "vectors": 40000, "queries": 30, "k": 100, "num_candidates": 100, "default": "hnsw",
        **{kind: {"recall_at_10": 0.99, "recall_at_100": 0.98, "index_es_cpu_s": 40.0,
                  "index_es_cpu_s_per_vector": 0.001, "index_seconds": 30.0,
                  "off_heap_bytes": 70_000_000, "off_heap_bytes_per_vector": 1750.0,
                  "search_memory_bytes_per_vector": 1600.0, "vec_bytes": 61_440_000,
                  "vex_bytes": 4_000_000, "veq_bytes": 0, "veb_bytes": 0}
           for kind in ("hnsw", "int8_hnsw", "bbq_hnsw")},
    },
    "runs": {
        "runs": 100_000, "runs_indexed": 100_000, "distinct_texts": 2000, "store_s": 200.0,
        "index_s": 300.0, "rounds": 2, "requests_per_round": {"text": 40},
        **{f"{kind}_{name}": v for kind in ("text", "filters", "dashboard")
           for name, v in (("p50_ms", 12.0), ("p99_ms", 40.0), ("p50_min_ms", 11.0),
                           ("p50_max_ms", 13.0))},
    },
}  # fmt: skip
CORPUS = {"packages": {"linux-doc-6.1": "6.1.1", "manpages": "6.03"}, "documents": 2000,
          "composition": {"manpages": {"available_documents": 900, "available_chunks": 9000,
                                       "chosen_documents": 400, "chosen_chunks": 4000}},
          "chunks_counted": 40000, "queries": 30, "query_examples": ["list directory contents"],
          "es_heap": "1g", "stage_seconds": {"single": 1800.0}}  # fmt: skip
