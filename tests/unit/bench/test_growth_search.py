"""Search by size: latencies pooled over rounds with their spread; exact nearest
neighbours, the reference of kNN recall."""

from __future__ import annotations

import numpy as np

from bench.growth_search import exact_top, summarise


def test_latencies_pool_the_rounds_and_keep_their_spread() -> None:
    figures = summarise({"hybrid": [[10.0, 20.0, 30.0], [12.0, 22.0, 100.0]], "bm25": []})
    assert figures["hybrid_p50_ms"] == 21.0
    assert (figures["hybrid_p50_min_ms"], figures["hybrid_p50_max_ms"]) == (20.0, 22.0)
    assert figures["hybrid_p99_ms"] == 100.0
    assert "bm25_p50_ms" not in figures


def test_exact_search_finds_the_nearest_vectors_in_order() -> None:
    vectors = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert exact_top(queries, vectors, 2).tolist() == [[0, 1], [2, 1]]
