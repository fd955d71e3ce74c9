"""The sizing plan: computed from the measured per-chunk costs, each labelled by source."""

from __future__ import annotations

from typing import Any

from bench import report, sizing

GIB = 2**30


def measured(**scale: float) -> dict[str, Any]:
    return {
        "_machine": {"cores": 2},
        "scale": {"max_chunks": 150_000, "dims": 384, **scale},
        "tracing": {"off_cpu_ms_per_request": 30.0},
    }


def test_vector_memory_follows_elasticsearchs_published_estimate() -> None:
    # float: 384 x 4 bytes + 16 links x 4 bytes; int8: 384 + 4 + 64; bbq: 48 + 14 + 64.
    assert sizing.vector_memory(1_000, 384, 16, "hnsw") == 1_000 * (1536 + 64)
    assert sizing.vector_memory(1_000, 384, 16, "int8_hnsw") == 1_000 * (388 + 64)
    assert sizing.vector_memory(1_000, 384, 16, "bbq_hnsw") == 1_000 * (62 + 64)


def test_the_plan_scales_the_measured_costs_linearly() -> None:
    results = measured(
        es_disk_bytes_per_chunk=4_000, encode_s_per_chunk_core=0.05, es_index_cpu_s_per_chunk=0.01
    )
    small, large = sizing.plan(results, 10_000_000), sizing.plan(results, 100_000_000)
    assert large["disk_tib"] == 10 * small["disk_tib"]
    # 100M chunks x 4,000 bytes x 2 copies.
    assert abs(large["disk_tib"] - 100_000_000 * 4_000 * 2 / 2**40) < 1e-9
    assert large["primary_shards"] == -(-100_000_000 * 4_000 // (sizing.SHARD_GIB * GIB))
    # 100M in a day = 1,157 chunks/s; x 0.05 core-s / 0.7 utilisation = 82.7 cores.
    assert abs(large["encode_cores"] - 100_000_000 / 86_400 * 0.05 / 0.7) < 1e-9
    assert large["indexer_processes"] == 21
    # The API's own CPU per search does not grow with the corpus.
    assert small["api_instances"] == large["api_instances"] == 2
    assert large["data_nodes"] >= 3
    assert large["data_nodes"] >= large["nodes_for"]["disk"]


def test_inputs_name_their_source_and_prefer_the_largest_corpus() -> None:
    results = measured(encode_s_per_chunk_core=0.05)
    results["ingest"] = {"raw_encode_chunks_per_s": 100.0}
    got = sizing.inputs(results)
    assert got["encode_s_per_chunk_core"] == sizing.Input(
        0.05, "measured: `scale.encode_s_per_chunk_core` (150,000 chunks)"
    )
    del results["scale"]["encode_s_per_chunk_core"]
    fallback = sizing.inputs(results)["encode_s_per_chunk_core"]
    assert fallback is not None and fallback.value == 2 / 100.0 and "CISI" in fallback.source
    assert sizing.inputs(results)["disk_per_chunk"] is None


def test_the_section_says_what_is_not_measured_and_renders_in_the_report() -> None:
    results = measured(encode_s_per_chunk_core=0.05)
    text = "\n".join(sizing.section(results))
    assert "## Sizing plan past this machine" in text
    assert "| Elasticsearch disk per chunk, one copy (bytes) | - | not measured yet |" in text
    assert "| Elasticsearch disk, all copies | not measured | not measured |" in text
    del results["tracing"]  # the report's tracing section needs the whole run's figures
    assert "## Sizing plan past this machine" in report.render(results)
    # Nothing measured yet: no section at all.
    assert sizing.section({}) == []


def test_vector_memory_measured_at_size_replaces_the_published_estimate() -> None:
    results = measured(vectors={"int8_hnsw": {"search_memory_bytes_per_vector": 500.0}})
    p = sizing.plan(results, 10_000_000)
    assert p["vector_gib"]["int8_hnsw"] == 10_000_000 * 500.0 * 2 / GIB
    published = sizing.vector_memory(10_000_000, 384, 16, "hnsw") * 2 / GIB
    assert p["vector_gib"]["hnsw"] == published
    text = "\n".join(sizing.section({**results, "ingest": {"raw_encode_chunks_per_s": 90.0}}))
    assert "`int8_hnsw` (measured per vector)" in text
    assert "`hnsw` (published estimate)" in text
