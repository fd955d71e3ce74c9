"""The embedding models' section of the report and its README block, from results."""

from __future__ import annotations

from bench import models_report, report


def figures(ndcg: float, encode: float) -> dict:
    return {
        "chunks": 1602,
        "relevance": {
            mode: {"ndcg@10": ndcg + i / 100, "map": 0.2, "recall@100": 0.5}
            for i, mode in enumerate(models_report.MODES)
        },
        "raw_encode_chunks_per_s": encode,
        "raw_encode_chunks_per_s_min": encode - 1,
        "raw_encode_chunks_per_s_max": encode + 1,
        "ingest_chunks_per_s": 50.0,
        "search_p50_ms": 40.0,
        "direct_p50_ms": 30.0,
        "search_vs_direct": 1.333,
    }


def test_each_model_is_a_row_with_its_relevance_speed_and_search_ratio() -> None:
    results = {
        "models": {
            "all-MiniLM-L6-v2": figures(0.40, 90.0),
            "bge-small-en-v1.5": figures(0.41, 45.0),
        },
        "_method": {"models": {"how": "measured so"}},
    }
    lines = models_report.section(results)
    assert lines[0] == "## Embedding models side by side"
    minilm = next(line for line in lines if line.startswith("| all-MiniLM-L6-v2"))
    assert "| 0.4000 | 0.4100 | 0.4200 | 0.4300 |" in minilm
    assert "| 90.0 (89.0-91.0) |" in minilm and "| 1.33 |" in minilm
    assert any(line.startswith("| bge-small-en-v1.5 | 0.4100") for line in lines)
    assert lines[-2] == "How: measured so"
    assert "## Embedding models side by side" in report.render(results)
    readme = "<!-- bench:models -->\nold\n<!-- /bench:models -->\n"
    assert "| 90.0 (89.0-91.0) |" in report.with_readme_blocks(readme, results)


def test_nothing_measured_is_no_section() -> None:
    assert models_report.section({}) == []
    assert models_report.readme_block({}) == ["(not measured yet: `make bench-models`)"]
