"""The report's scale section and its plots, drawn from the ``scale`` keys."""

from __future__ import annotations

from pathlib import Path

from bench import growth_figures, growth_report, plots, report
from tests.unit.bench.scale_states import CORPUS, STATES


def test_the_report_section_gives_the_corpus_size_in_each_row(tmp_path: Path) -> None:
    results = {
        "scale": growth_figures.figures(STATES, CORPUS),
        "_method": {"scale": {"how": "Ingest."}},
    }
    text = report.render(results)
    assert "## Scale: costs as the corpus grows (to 40,000 chunks)" in text
    rows = [line for line in text.splitlines() if line.startswith(("| 1 node", "| 3 nodes"))]
    assert len(rows) == 3 * 2 + 2 + 2  # search by size, then ingest and costs per topology
    assert all(any(f"{n:,}" in row for n in (2010, 20100, 40000)) for row in rows)
    assert "| `int8_hnsw` |" in text and "### Runs search with 100,000 runs" in text
    assert "| manpages | 6.03 | 400 / 900 | 4,000 / 9,000 |" in text
    assert "How: Ingest." in text
    assert "Scale:" not in report.render({})
    written = {p.name for p in plots.render(results, tmp_path)}
    assert written == {"scale_search.png", "scale_cost.png", "scale_ingest.png"}
    assert growth_report.section({}) == []


def test_before_the_topology_stages_the_section_says_what_is_not_measured() -> None:
    scale = growth_figures.figures(STATES, CORPUS)
    runs_only = {k: v for k, v in scale.items() if k in ("corpus", "runs")}
    text = report.render({"scale": runs_only})
    assert "## Scale: costs as the corpus grows\n" in text
    assert "not measured yet" in text
    assert "| topology |" not in text  # no table without rows
    assert "### Runs search with 100,000 runs" in text
