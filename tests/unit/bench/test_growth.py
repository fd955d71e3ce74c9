"""The scale benchmark's pure parts: its knobs, the checkpoint logic (what fits a stage's
time, where the cluster switches to cached vectors), the throughput figures, and the shape
of the ``scale`` keys the sizing plan reads, with the report section and plots drawn from
them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import growth, growth_report, plots, report
from bench.growth_ingest import fits, rate_so_far
from bench.growth_runs import bodies
from bench.growth_search import exact_top, summarise


def test_the_knobs_come_from_the_environment() -> None:
    cfg = growth.Config.from_env(
        {"SCALE_STAGES": "runs, single", "SCALE_MAX_CHUNKS": "3000", "SCALE_POINTS": "500,1500"}
    )
    assert cfg.stages == ("single", "runs")  # in the stages' own order
    assert (cfg.max_chunks, cfg.points) == (3000, (500, 1500))
    assert growth.Config.from_env({}).stages == growth.STAGES
    with pytest.raises(SystemExit, match="unknown stage"):
        growth.Config.from_env({"SCALE_STAGES": "single,peers"})


def test_a_portion_starts_only_if_it_ends_before_the_deadline() -> None:
    assert fits(0, None, 10**9, 1, 0)
    assert fits(100, 1100, 20_000, 25.0, 100)  # 800 s of ingest + 100 s of searches
    assert not fits(100, 1100, 25_000, 25.0, 100)
    portions = [
        {"phase": "cold", "new_chunks": 2000, "searchable_s": 100},
        {"phase": "warm", "new_chunks": 9000, "searchable_s": 30},
    ]
    assert rate_so_far(portions) == 20.0  # cold portions set the pace
    assert rate_so_far([]) == 20.0


def test_the_cluster_switches_to_cached_vectors_at_the_first_portion_past_its_cold_part() -> None:
    assert growth.warm_portion([2010, 18050, 25000, 25000], 20_000) == 2
    assert growth.warm_portion([2010, 18050], 20_000) is None
    assert growth.warm_portion([2010, 18050], 0) == 0


def test_throughput_over_windows_and_quarters_of_the_chunks() -> None:
    steady = [[t, 20 * t] for t in range(0, 401, 10)]
    assert growth.throughput(steady, 60) == [[t, 20.0] for t in (60, 120, 180, 240, 300, 360)]
    assert growth.quarter_rates(steady) == [20.0] * 4
    # Twice as slow over the second half of the chunks.
    slowing = [[t, 20 * t] for t in range(0, 201, 10)]
    slowing += [[200 + t, 4000 + 10 * t] for t in range(10, 401, 10)]
    assert growth.quarter_rates(slowing) == [20.0, 20.0, 10.0, 10.0]
    assert growth.quarter_rates(steady[:1]) == []


def test_the_heap_per_chunk_is_the_slope_of_its_floor() -> None:
    assert growth.slope([(0.0, 100.0), (10.0, 120.0), (20.0, 140.0)]) == pytest.approx(2.0)
    assert growth.slope([(5.0, 1.0)]) is None


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


def test_runs_requests_of_each_kind() -> None:
    kinds = bodies(["library", "catalogue", "indexing"])
    assert [b["query"] for b in kinds["text"]] == ["library", "catalogue", "indexing"]
    assert all(not b.get("query") and b["sort"] == "time" for b in kinds["filters"])
    assert {len(b["aggregations"]) for b in kinds["dashboard"]} == {3}
    assert {b["size"] for b in kinds["dashboard"]} == {0}


def portion(index: int, chunks: int, new: int, start: float, phase: str = "cold") -> dict[str, Any]:
    """A portion's state as the benchmark keeps it: 25 chunks/s end to end, 250 from cached
    vectors; ``start`` on the ingest clock."""
    rate = 25.0 if phase == "cold" else 250.0
    seconds = new / rate
    samples = [
        [start + t, chunks - new + rate * t, 0, 300.0, 500.0] for t in range(0, int(seconds), 30)
    ]
    return {
        "index": index, "phase": phase, "documents": new // 20, "failed": 0,
        "chunks_expected": new, "chunks": chunks, "new_chunks": new,
        "store_s": 5.0, "searchable_s": seconds, "backlog_s": seconds - 5,
        "es_cpu_s": new * 0.004, "indexer_cpu_s": new * 0.07, "storer_cpu_s": new * 0.001,
        "storer_peak_rss_mb": 400.0, "heap_floor_bytes": 200 * 2**20 + chunks * 100,
        "disk_primary_bytes": chunks * 6000,
        "disk_bytes": chunks * 6000 * (2 if phase == "warm" else 1),
        "dead_letters": 0,
        "samples": [*samples, [start + seconds, chunks, 0, 300.0, 500.0]],
    }  # fmt: skip


def point(chunks: int) -> dict[str, Any]:
    figures = {"chunks": chunks, "api_peak_rss_mb": 350.0, "queries": 30, "rounds": 2,
               "es_disk_bytes": chunks * 6000, "es_disk_primary_bytes": chunks * 6000,
               "es_heap_floor_bytes": 2**28}  # fmt: skip
    for mode, ms in (("bm25", 8), ("vector", 20), ("hybrid", 45), ("cached", 3), ("direct", 35)):
        figures |= {f"{mode}_p50_ms": ms, f"{mode}_p99_ms": 2 * ms,
                    f"{mode}_p50_min_ms": ms - 1, f"{mode}_p50_max_ms": ms + 1}  # fmt: skip
    return figures | {"server_cached_p50_ms": 1.5}


STATES: dict[str, dict[str, Any]] = {
    "single": {
        "selection": "abc", "complete": True, "indexer_peak_rss_mb": 900.0,
        "portions": [portion(0, 2010, 2010, 0), portion(1, 20100, 18090, 80.4),
                     portion(2, 40000, 19900, 804)],
        "points": {"2000": point(2010), "20000": point(20100), "40000": point(40000)},
        "recall": {"chunks": 40000, "queries": 30, "k": 100, "num_candidates": 100,
                   "recall_at_10": 0.98, "recall_at_100": 0.97, "index_type": "hnsw"},
        "encode": {"chunks": 256, "cores": 2, "s_per_chunk_one_core": 0.07,
                   "s_per_chunk_all_cores": 0.038, "backend": "onnx-int8"},
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
          "chunks_counted": 40000, "queries": 30, "query_examples": ["list directory contents"],
          "es_heap": "1g", "stage_seconds": {"single": 1800.0}}  # fmt: skip


def test_the_scale_keys_the_sizing_plan_reads() -> None:
    s = growth.figures(STATES, CORPUS)
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
    assert s["encode_s_per_chunk_per_core"] == 0.07
    assert s["recall_at_10"] == 0.98
    assert s["runs_search_p50_ms"] == 12.0 and s["runs_dashboard_p99_ms"] == 40.0
    assert s["vectors"]["int8_hnsw"]["search_memory_bytes_per_vector"] == 1600.0
    single, cluster = s["single"], s["cluster"]
    assert single["ingest_last_to_first_quarter"] == pytest.approx(1.0, abs=0.1)
    assert cluster["ingest_chunks"] == 20100 and cluster["ingest_cached_chunks_per_s"] == 250.0
    assert cluster["es_disk_bytes_per_chunk"] == 12000.0
    assert {phase for _, _, phase in cluster["throughput"]} == {0, 1}
    assert s["headline_topology"] == "single"


def test_without_the_single_node_the_cluster_gives_the_headline() -> None:
    s = growth.figures({"cluster": STATES["cluster"]}, CORPUS)
    assert s["headline_topology"] == "cluster" and s["max_chunks"] == 40000
    assert "runs_search_p50_ms" not in s


def test_the_report_section_gives_the_corpus_size_in_each_row(tmp_path: Path) -> None:
    results = {"scale": growth.figures(STATES, CORPUS), "_method": {"scale": {"how": "Ingest."}}}
    text = report.render(results)
    assert "## Scale: costs as the corpus grows (to 40,000 chunks)" in text
    rows = [line for line in text.splitlines() if line.startswith(("| 1 node", "| 3 nodes"))]
    assert len(rows) == 3 * 2 + 2 + 2  # search by size, then ingest and costs per topology
    assert all(any(f"{n:,}" in row for n in (2010, 20100, 40000)) for row in rows)
    assert "| `int8_hnsw` |" in text and "### Runs search with 100,000 runs" in text
    assert "How: Ingest." in text
    assert "Scale:" not in report.render({})
    written = {p.name for p in plots.render(results, tmp_path)}
    assert written == {"scale_search.png", "scale_cost.png", "scale_ingest.png"}
    assert growth_report.section({}) == []
