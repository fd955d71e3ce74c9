"""The scale benchmark's figures: throughput windows and quarters, the heap's slope, where
the cluster switches to cached vectors, and the shape of the ``scale`` keys the sizing
plan reads."""

from __future__ import annotations

import pytest

from bench import growth_figures as g
from tests.unit.bench.scale_states import CORPUS, STATES


def test_the_cluster_switches_to_cached_vectors_at_the_first_portion_past_its_cold_part() -> None:
    assert g.warm_portion([2010, 18050, 25000, 25000], 20_000) == 2
    assert g.warm_portion([2010, 18050], 20_000) is None
    assert g.warm_portion([2010, 18050], 0) == 0


def test_throughput_over_windows_and_quarters_of_the_chunks() -> None:
    steady = [[t, 20 * t] for t in range(0, 401, 10)]
    assert g.throughput([[t, 0, 0, 0, 0, c] for t, c in steady], 60, column=5)[0] == [60, 20.0]
    assert g.throughput(steady, 60) == [[t, 20.0] for t in (60, 120, 180, 240, 300, 360)]
    assert g.quarter_rates(steady) == [20.0] * 4
    # Twice as slow over the second half of the chunks.
    slowing = [[t, 20 * t] for t in range(0, 201, 10)]
    slowing += [[200 + t, 4000 + 10 * t] for t in range(10, 401, 10)]
    assert g.quarter_rates(slowing) == [20.0, 20.0, 10.0, 10.0]
    assert g.quarter_rates(steady[:1]) == []


def test_the_heap_per_chunk_is_the_slope_of_the_live_heap() -> None:
    assert g.slope([(0.0, 100.0), (10.0, 120.0), (20.0, 140.0)]) == pytest.approx(2.0)
    assert g.slope([(5.0, 1.0)]) is None


def test_the_scale_keys_the_sizing_plan_reads() -> None:
    s = g.figures(STATES, CORPUS)
    assert s["max_chunks"] == 40000 and s["sizes"] == [2000, 20000, 40000]
    for size in ("2000", "20000", "40000"):
        for mode in ("bm25", "vector", "hybrid", "cached"):
            assert isinstance(s[size][f"{mode}_p50_ms"], float | int)
            assert isinstance(s[size][f"{mode}_p99_ms"], float | int)
        assert s[size]["direct_p50_ms"] == 35 and s[size]["chunks"] >= int(size) - 100
    assert s["ingest_chunks_per_s"] == pytest.approx(25.0)
    assert s["es_disk_bytes_per_chunk"] == 6000.0
    assert s["es_heap_bytes_per_chunk"] == pytest.approx(100.0)
    assert s["es_index_cpu_s_per_chunk"] == pytest.approx(0.004)
    assert s["encode_s_per_chunk_core"] == 0.07 and s["dims"] == 384
    assert s["api_cpu_s_per_search"] == 0.02  # at the largest size
    assert s["recall_at_10"] == 0.98
    assert s["runs_search_p50_ms"] == 12.0 and s["runs_dashboard_p99_ms"] == 40.0
    assert s["vectors"]["int8_hnsw"]["search_memory_bytes_per_vector"] == 1600.0
    single, cluster = s["single"], s["cluster"]
    # Progress is read from the model's counter (searchable chunks move 5,000 at a time).
    assert single["ingest_quarters_chunks_per_s"] == pytest.approx([25.0] * 4, rel=0.05)
    assert single["ingest_last_to_first_quarter"] == pytest.approx(1.0, abs=0.05)
    assert {r for _, r, _ in single["throughput"]} == {25.0}
    assert cluster["ingest_chunks"] == 20100 and cluster["ingest_cached_chunks_per_s"] == 250.0
    assert cluster["es_disk_bytes_per_chunk"] == 12000.0
    assert {phase for _, _, phase in cluster["throughput"]} == {0, 1}
    assert {r for _, r, phase in cluster["throughput"] if phase == 1} == {250.0}
    assert s["headline_topology"] == "single"


def test_without_the_single_node_the_cluster_gives_the_headline() -> None:
    s = g.figures({"cluster": STATES["cluster"]}, CORPUS)
    assert s["headline_topology"] == "cluster" and s["max_chunks"] == 40000
    assert "runs_search_p50_ms" not in s
