"""The benchmark report: targets judged from the figures (met and missed both said), the
peers beside MyAIServ in every table on each backend, every figure with its spread over
rounds and a lead within it called a tie, sections filled by several benchmarks merged,
and the plots drawn as PNG files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench import plots, report


def relevance(ndcg: dict[str, float]) -> dict[str, Any]:
    return {
        "cisi": {m: {"ndcg@10": v, "map": v / 2, "recall@100": v + 0.1} for m, v in ndcg.items()}
    }


def rounds(key: str, value: float, spread: float) -> dict[str, float]:
    """A figure as a benchmark records it over rounds: median, lowest, highest."""
    return {key: value, f"{key}_min": value - spread, f"{key}_max": value + spread}


def ingest_run(chunks_per_s: float, backend: str) -> dict[str, Any]:
    return {
        "backend": backend,
        "threads": 2,
        **rounds("chunks_per_s", chunks_per_s, 0.3),
        "docs_per_s": chunks_per_s * 0.9,
        "seconds": 1602 / chunks_per_s,
        "ratio_to_raw_encode": chunks_per_s / 25.0,
        "ratio_min": chunks_per_s / 25.0 - 0.02,
        "ratio_max": chunks_per_s / 25.0 + 0.02,
    }


def search_run(backend: str, p50: float = 30.0) -> dict[str, Any]:
    return {
        "backend": backend,
        "threads": 2,
        **{
            name: v
            for m in plots.MODES
            for k, v, w in (("p50_ms", p50, 1.0), ("p99_ms", 90.0, 5.0), ("rps_1", 30.0, 1.0))
            for name, v in rounds(f"{m}_uncached_{k}", v, w).items()
        },
    }


def peer(chunks_per_s: float, onnx_chunks_per_s: float, ndcg: dict[str, float]) -> dict[str, Any]:
    return {
        "ingest": ingest_run(chunks_per_s, "torch"),
        "ingest_onnx_int8": ingest_run(onnx_chunks_per_s, "onnx-int8"),
        "relevance": relevance(ndcg),
        "relevance_onnx_int8": relevance(ndcg),
        "relevance_best_analyzer": {
            **relevance({m: v + 0.01 for m, v in ndcg.items()}),
            "analyzer": "stop",
        },
        "search": search_run("torch"),
        "search_onnx_int8": search_run("onnx-int8", p50=25.0),
        "memory": {
            **rounds("ingest_peak_rss_mb", 1500.0, 20.0),
            **rounds("ingest_onnx_int8_peak_rss_mb", 1100.0, 20.0),
            **rounds("search_peak_rss_mb", 1400.0, 10.0),
            **rounds("search_onnx_int8_peak_rss_mb", 900.0, 10.0),
        },
        "notes": ["hybrid summed, no RRF here"],
    }


RESULTS: dict[str, Any] = {
    "_machine": {"cores": 2, "cpu": "test", "python": "3.11", "commit": "abc"},
    "ingest": {
        "documents": 1460,
        "chunks": 1602,
        "rounds": 3,
        "seconds": 70.0,
        "docs_per_s": 20.9,
        **rounds("chunks_per_s", 22.9, 0.4),
        "threads": 2,
        **rounds("raw_encode_chunks_per_s", 25.0, 0.5),
        "ratio_to_raw_encode": 0.916,
        "ratio_min": 0.9,
        "ratio_max": 0.93,
        "backend": "onnx-int8",
        "torch": {
            "backend": "torch",
            **rounds("chunks_per_s", 19.5, 0.5),
            "docs_per_s": 17.8,
            "seconds": 82.2,
            "ratio_to_raw_encode": 0.89,
            "ratio_min": 0.87,
            "ratio_max": 0.92,
            "raw_encode_chunks_per_s": 21.9,
        },
    },
    "relevance": {**relevance({"bm25": 0.39, "vector": 0.43, "hybrid": 0.45}), "queries": 76},
    "search": {
        "concurrency": 4,
        "rounds": 3,
        "backend": "onnx-int8",
        **rounds("hybrid_uncached_p50_ms", 80.0, 2.0),
        **rounds("hybrid_uncached_p99_ms", 200.0, 10.0),
        **rounds("hybrid_uncached_rps_1", 11.0, 0.5),
        "hybrid_uncached_server_p50_ms": 78.0,
        **rounds("bm25_uncached_p50_ms", 20.0, 0.5),
        **rounds("bm25_uncached_p99_ms", 40.0, 2.0),
        **rounds("bm25_uncached_rps_1", 45.0, 1.0),
        **rounds("vector_uncached_p50_ms", 29.5, 1.0),
        **rounds("vector_uncached_p99_ms", 90.0, 5.0),
        **rounds("vector_uncached_rps_1", 19.0, 1.0),
        **rounds("direct_p50_ms", 60.0, 2.0),
        **rounds("direct_p99_ms", 150.0, 5.0),
        **rounds("uncached_to_direct_p50", 1.33, 0.05),
        "cached_p50_ms": 4.0,
        "cached_p99_ms": 7.0,
        "cached_client_p50_ms": 5.5,
        "hybrid_uncached_rps": 12.0,
        "cached_rps": 300.0,
    },
    "peers": {
        "langchain": peer(21.0, 18.0, {"bm25": 0.34, "vector": 0.42, "hybrid": 0.34}),
        "haystack": peer(20.0, 17.0, {"bm25": 0.33, "vector": 0.42, "hybrid": 0.43}),
        "best_analyzer": {"analyzer": "stop", "why": "no stemmer on this cluster"},
        "encode_onnx_int8": {
            "backend": "onnx-int8",
            "threads": 2,
            "batch_size": 64,
            **rounds("chunks_per_s", 20.0, 0.5),
        },
    },
    "scaling": {
        "ingest": {"workers_1_chunks_per_s": 22.9, "workers_2_chunks_per_s": 23.5, "factor": 1.03},
        "search": {
            "clients": 8,
            "uncached_rps_1": 5.0,
            "uncached_rps_3": 5.5,
            "uncached_factor": 1.1,
            "cached_rps_1": 260.0,
            "cached_rps_3": 340.0,
            "cached_factor": 1.31,
        },
    },
    "memory": {
        **rounds("web_ingest_peak_rss_mb", 900.0, 10.0),
        "web_search_peak_rss_mb": 950.0,
        **rounds("indexer_peak_rss_mb", 1000.0, 30.0),
    },
}


def judged(results: dict[str, Any]) -> dict[str, bool]:
    return {target: met for target, _, met in report.targets(results)}


def test_every_target_is_judged_from_the_figures() -> None:
    assert judged(RESULTS) == {
        "ingest >= 85% of raw encode on onnx-int8": True,
        "ingest ahead of both peers on the same backend (onnx-int8)": True,
        "hybrid nDCG@10 ahead of every peer retriever": True,
        "uncached search p50 <= 1.5x the direct client": True,
        "cached search p50 <= 5 ms server time": True,
    }


@pytest.mark.parametrize(
    ("path", "value", "target"),
    [
        ("ingest.ratio_to_raw_encode", 0.84, "ingest >= 85% of raw encode on onnx-int8"),
        (
            "peers.haystack.ingest_onnx_int8.chunks_per_s",
            24.0,
            "ingest ahead of both peers on the same backend (onnx-int8)",
        ),
        (
            "peers.langchain.relevance.cisi.vector.ndcg@10",
            0.46,
            "hybrid nDCG@10 ahead of every peer retriever",
        ),
        ("search.uncached_to_direct_p50", 1.6, "uncached search p50 <= 1.5x the direct client"),
        ("search.cached_p50_ms", 5.2, "cached search p50 <= 5 ms server time"),
    ],
)
def test_a_missed_target_is_reported_as_missed(path: str, value: float, target: str) -> None:
    results = copy.deepcopy(RESULTS)
    *parents, leaf = path.split(".")
    node = results
    for part in parents:
        node = node[part]
    node[leaf] = value
    verdicts = judged(results)
    assert verdicts.pop(target) is False
    assert all(verdicts.values())
    assert f"| {target} |" in report.render(results)
    assert "**missed**" in report.render(results)


def test_a_missed_ingest_ratio_is_explained_from_the_runs_figures() -> None:
    assert report.why_missed(RESULTS) == []
    results = copy.deepcopy(RESULTS)
    results["ingest"]["ratio_to_raw_encode"] = 0.8
    (why,) = report.why_missed(results)
    # At 80% of the raw rate, the encode alone takes 56.0 s of the 70.0 s end to end.
    assert "takes 56.0 s of the 70.0 s" in why and "other 14.0 s" in why
    assert "on 2 cores" in why and "on torch, MyAIServ reaches 89.0%" in why
    assert f"- {why}" in report.render(results)


def test_a_missed_search_ratio_is_explained_from_the_runs_figures() -> None:
    results = copy.deepcopy(RESULTS)
    results["search"].update(
        hybrid_uncached_p50_ms=96.0, hybrid_uncached_server_p50_ms=93.0, uncached_to_direct_p50=1.6
    )
    (why,) = report.why_missed(results)
    # 96 ms through the API against 60 ms direct: 36 ms more, 3 of them on loopback HTTP.
    assert "96.0 ms against 60.0 ms" in why and "36.0 ms more" in why
    assert "3.0 ms of HTTP on loopback" in why
    assert f"- {why}" in report.render(results)


def test_a_lead_within_the_noise_of_the_rounds_is_a_tie_not_a_win() -> None:
    results = copy.deepcopy(RESULTS)
    # 22.9 vs 22.6 on the same backend: ahead by 1.3%, while the rounds spread over 0.8.
    results["peers"]["langchain"]["ingest_onnx_int8"].update(rounds("chunks_per_s", 22.6, 0.3))
    target = "ingest ahead of both peers on the same backend (onnx-int8)"
    (_, measured, met) = next(t for t in report.targets(results) if t[0] == target)
    assert met is False
    assert "LangChain 22.6 (22.3-22.9): tie (+1.3%, within the rounds' spread of 3.5%)" in measured
    assert "Haystack 17.0 (16.7-17.3): ahead by 34.7% (spread 4.7%)" in measured
    assert "(the peers on their default, torch: LangChain 21.0 (20.7-21.3)," in measured
    # ... and in the table that shows it.
    row = (
        "| LangChain | onnx-int8, 2 threads | 22.6 (22.3-22.9) | 16.2 | 89.0 | 72.0% (70.0%-74.0%)"
    )
    assert f"{row} | tie (+1.3%, within the rounds' spread of 3.5%) |" in report.render(results)


def test_a_missed_ingest_lead_is_explained_from_the_runs_figures() -> None:
    results = copy.deepcopy(RESULTS)
    results["peers"]["haystack"]["ingest_onnx_int8"].update(rounds("chunks_per_s", 24.0, 0.3))
    (why,) = [w for w in report.why_missed(results) if w.startswith("Ingest vs the peers")]
    assert why.startswith(
        "Ingest vs the peers on onnx-int8: end to end, MyAIServ reaches 91.6% of its raw "
        "encode, the peers LangChain 72.0%, Haystack 68.0% of theirs. Same ONNX int8 file, "
        "same threads (2): MyAIServ's runtime encodes 25.0 (24.5-25.5) chunks/s, "
    )
    assert "tie" not in why  # Haystack's lead is larger than the spread
    assert f"- {why}" in report.render(results)


def test_the_ingest_target_falls_back_to_torch_where_the_peers_ran_only_on_it() -> None:
    results = copy.deepcopy(RESULTS)
    for p in ("langchain", "haystack"):
        del results["peers"][p]["ingest_onnx_int8"]
    (target,) = [t for t in report.targets(results) if t[0].startswith("ingest ahead")]
    assert target[0] == "ingest ahead of both peers on the same backend (torch)"
    # MyAIServ on torch, 19.5, behind both peers' 21.0 and 20.0 by more than the spread.
    assert target[2] is False
    assert "19.5 (19.0-20.0) chunks/s vs LangChain 21.0 (20.7-21.3): behind by 7.1%" in target[1]


def test_the_report_puts_the_peers_beside_myaiserv_in_each_table() -> None:
    text = report.render(RESULTS)
    for heading in ("## Targets", "## Ingest", "## Relevance", "## Query latency", "## Scaling"):
        assert heading in text
    # Every row states its backend and threads, every figure its rounds' spread.
    assert "| MyAIServ: API + 1 indexer | onnx-int8, 2 threads | 22.9 (22.5-23.3) |" in text
    assert "| LangChain | torch, 2 threads | 21.0 (20.7-21.3) |" in text
    assert "| Haystack | torch, 2 threads | 20.0 (19.7-20.3) |" in text
    # Like for like: MyAIServ and the limit on the peers' backend, the peers on MyAIServ's.
    assert "| MyAIServ: API + 1 indexer | torch | 19.5 (19.0-20.0) |" in text
    assert (
        "| raw encode, sentence-transformers = MyAIServ's torch backend (the limit) | torch | "
        "21.9 | | | 100% | |" in text
    )
    assert (
        "| raw encode, MyAIServ's embedder (its limit) | onnx-int8, 2 threads | 25.0 (24.5-25.5)"
        in text
    )
    assert (
        "| raw encode, sentence-transformers' ONNX backend (the peers' limit) | onnx-int8, "
        "2 threads | 20.0 (19.5-20.5) |" in text
    )
    assert (
        "Same ONNX int8 file, same threads (2): MyAIServ's runtime encodes 25.0 (24.5-25.5) "
        "chunks/s, sentence-transformers' ONNX backend (what both peers call) 20.0 "
        "(19.5-20.5): MyAIServ's encoder ahead by 25.0% (spread 5.0%)." in text
    )
    assert (
        "| LangChain | onnx-int8, 2 threads | 18.0 (17.7-18.3) | 16.2 | 89.0 | 72.0% (70.0%-74.0%)"
        " | MyAIServ ahead by 27.2% (spread 4.4%) |" in text
    )
    assert "| LangChain | torch, 2 threads | 21.0 (20.7-21.3) |" in text
    assert "MyAIServ behind by 7.1% (spread 4.8%) |" in text  # torch beside torch
    assert "| Haystack | hybrid | 0.4300 |" in text
    assert "| Haystack, onnx-int8 | hybrid | 0.4300 |" in text
    assert "| Haystack, analyzer: stop | bm25 | 0.3400 |" in text
    assert "- The peers' analyzer: no stemmer on this cluster" in text
    # Latency: the spread, and a lead within it a tie (vector: 29.5 vs 30.0 +- 1).
    assert "| MyAIServ `/v1/search` bm25, uncached | onnx-int8 | 20.0 (19.5-20.5) |" in text
    assert (
        "| LangChain bm25 retriever, in-process | torch, 2 threads | 30.0 (29.0-31.0) | "
        "90.0 (85.0-95.0) | 30.0 (29.0-31.0) | | MyAIServ ahead by 33.3% (spread 6.7%) |" in text
    )
    assert "| LangChain vector retriever, in-process | torch, 2 threads | 30.0" in text
    assert "| tie (+1.7%, within the rounds' spread of 6.7%) |" in text
    assert (
        "| Haystack hybrid retriever, in-process | onnx-int8, 2 threads | 25.0 (24.0-26.0)" in text
    )
    assert "uncached p50 / direct p50 = 1.33 (1.28-1.38)." in text
    # Memory: each process's own, MyAIServ's counterpart on the same backend only.
    assert "| MyAIServ indexer worker, during ingest | onnx-int8 | 1000 (970-1030) | |" in text
    assert "| Haystack process, search | torch | 1400 (1390-1410) |  |" in text
    assert (
        "| Haystack process, ingest | onnx-int8 | 1100 (1080-1120) | MyAIServ ahead by 9.1% "
        "(spread 5.5%) (the indexer) |" in text
    )
    assert (
        "| LangChain process, search | onnx-int8 | 900 (890-910) | MyAIServ behind by 5.6% "
        "(spread 2.2%) (the API instance) |" in text
    )
    assert "- LangChain: hybrid summed, no RRF here" in text


def test_the_readme_block_sets_myaiserv_beside_the_peers_with_ties() -> None:
    block = report.with_readme_blocks("<!-- bench:peers -->\n<!-- /bench:peers -->\n", RESULTS)
    assert "| median of the rounds (lowest-highest) | MyAIServ | LangChain | Haystack |" in block
    assert (
        "| ingest, chunks/s, onnx-int8 | 22.9 (22.5-23.3) | 18.0 (17.7-18.3) (MyAIServ ahead) "
        "| 17.0 (16.7-17.3) (MyAIServ ahead) |" in block
    )
    assert "| ingest, chunks/s, torch | 19.5 (19.0-20.0) | 21.0 (20.7-21.3) (MyAIServ behind)" in (
        block
    )
    memory = "| peak RSS MB while ingesting, onnx-int8 (MyAIServ: its indexer) | 1000 (970-1030) |"
    assert memory in block
    close = copy.deepcopy(RESULTS)
    close["peers"]["haystack"]["ingest_onnx_int8"]["chunks_per_s"] = 22.7
    block = report.with_readme_blocks("<!-- bench:peers -->\n<!-- /bench:peers -->\n", close)
    assert "| 22.7 (16.7-17.3) (tie) |" in block


def test_sections_filled_by_several_benchmarks_are_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(report, "REPORT", tmp_path / "REPORT.md")
    monkeypatch.setattr(report, "PLOTS", tmp_path / "plots")
    monkeypatch.setattr(report, "README", tmp_path / "README.md")
    report.save("peers", {"langchain": {"ingest": {"chunks_per_s": 20.0}}}, {"how_ingest": "a"})
    report.save(
        "peers",
        {"langchain": {"relevance": {"cisi": {}}}, "haystack": {"notes": []}},
        {"how": "b"},
        merge=True,
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["peers"] == {
        "langchain": {"ingest": {"chunks_per_s": 20.0}, "relevance": {"cisi": {}}},
        "haystack": {"notes": []},
    }
    assert saved["_method"]["peers"] == {"how_ingest": "a", "how": "b"}
    report.save("peers", {"haystack": {}}, {})  # without merge: replaced
    assert json.loads((tmp_path / "results.json").read_text())["peers"] == {"haystack": {}}


def test_the_plots_are_drawn_as_png_files(tmp_path: Path) -> None:
    written = plots.render(RESULTS, tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["ingest.png", "latency.png", "memory.png", "relevance.png", "scaling.png"]
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    # Redrawn from the same figures, the files are the same (no timestamps inside).
    first = {p.name: p.read_bytes() for p in written}
    plots.render(RESULTS, tmp_path)
    assert first == {p.name: p.read_bytes() for p in written}


def test_plots_without_their_figures_are_skipped(tmp_path: Path) -> None:
    only_ingest = {"ingest": RESULTS["ingest"]}
    assert [p.name for p in plots.render(only_ingest, tmp_path)] == ["ingest.png"]


def test_the_readme_quotes_the_committed_results() -> None:
    """The README's figures are rendered from bench/results.json, never typed by hand."""
    readme = report.README.read_text()
    assert readme.count("<!-- bench:") == len(report.README_BLOCKS)
    assert report.with_readme_blocks(readme, report.load()) == readme


def test_readme_blocks_are_rewritten_from_new_results() -> None:
    readme = "intro\n<!-- bench:relevance -->\nold table\n<!-- /bench:relevance -->\nrest\n"
    results = {"relevance": relevance({"bm25": 0.31, "hybrid": 0.4567})}
    rewritten = report.with_readme_blocks(readme, results)
    assert "old table" not in rewritten
    assert "| bm25 | 0.310 | 0.155 | 0.410 |" in rewritten
    assert "| hybrid | 0.457 | 0.228 | 0.557 |" in rewritten
    assert rewritten.startswith("intro\n") and rewritten.endswith(
        "<!-- /bench:relevance -->\nrest\n"
    )
    assert report.with_readme_blocks(rewritten, results) == rewritten


def test_hung_dependencies_get_a_row_each_and_are_skipped_without_figures() -> None:
    hang = {
        "hang_s": 30.0,
        "p50_ms": 3.9,
        "p99_ms": 8016.5,
        "max_ms": 8479.3,
        "recovered_s": 1.0,
        "answers_during_hang": {"201": 2, "503": 367},
        "unexpected_answers": 0,
        "503_without_retry_after": 0,
        "breaker_opened": True,
    }
    results = {
        "reliability": {"hang": {"postgres": hang, "acknowledged_writes": 9, "lost_writes": 0}}
    }
    text = report.render(results)
    assert "## Hung dependencies under load" in text
    assert "| postgres (30 s) | 4 | 8016 | 8479 | 201: 2, 503: 367 | 0 | True | 1 |" in text
    assert "Acknowledged writes 9, lost 0." in text
    assert "Hung dependencies" not in report.render({})


def test_the_topology_section_and_its_readme_block_come_from_its_figures() -> None:
    topology = {
        "engine": "podman",
        "image_mb": 907,
        "boot_s": 150.2,
        "boot_s_range": {"median": 150.2, "min": 140.0, "max": 160.4},
        "boot_restart_s": 60.0,
        "boot_restart_s_range": {"median": 60.0, "min": 55.0, "max": 65.0},
        "scale_3_to_5_failed_requests": 0,
        "scale_3_to_5_requests": 1234,
        "scale_5_to_3_failed_requests": 1,
        "scale_5_to_3_requests": 900,
        "es_node_loss_failed_searches": 0,
        "es_node_loss_searches": 2500,
        "redis_failover_s": 9.4,
        "redis_failover_max_s": 11.0,
        "redis_failover_switch_s": 7.5,
        "rounds": 3,
        "boot_rounds": 2,
    }
    text = report.render({"topology": topology, "_method": {"topology": {"how": "Boots."}}})
    assert "## Production topology" in text
    assert "| boot, empty volumes, to `/ready` 200 (images built) | 150 s (140-160) |" in text
    assert "| failed requests, scaling web 3 -> 5 | 0 of 1,234 |" in text
    assert "| app image | 907 MB |" in text
    assert "9.4 s, max 11.0 s (7.5 s)" in text
    assert "Production topology" not in report.render({})
    readme = "<!-- bench:topology -->\n<!-- /bench:topology -->\n"
    block = report.with_readme_blocks(readme, {"topology": topology})
    assert "| failed searches, an Elasticsearch node down | 0 |" in block
    assert report.with_readme_blocks(readme, {}) == readme


def test_real_documents_beside_make_run_are_reported_and_judged() -> None:
    results = copy.deepcopy(RESULTS)
    results["ingest"]["real_docs"] = {
        "package": "linux-doc-6.1",
        "version": "6.1.1",
        "documents": 210,
        "chunks": 3012,
        "tokens": 640000,
        "rounds": 3,
        **rounds("chunks_per_s", 25.0, 0.5),
        **rounds("tokens_per_s", 5300.0, 100.0),
        **rounds("raw_encode_chunks_per_s", 27.0, 0.5),
        **rounds("raw_encode_tokens_per_s", 5700.0, 100.0),
        **rounds("ratio_to_raw_encode", 0.926, 0.01),
    }
    results["_method"] = {"ingest": {"how_real_docs": "Three rounds beside make run."}}
    target = "real documents: `myaiserv ingest` beside `make run` >= 85% of raw encode"
    assert judged(results)[target] is True
    text = report.render(results)
    assert "## Real documents beside `make run`" in text
    assert "| `myaiserv ingest` beside `make run` | 25.0 (24.5-25.5) | 5300 (5200-5400) |" in text
    assert "How: Three rounds beside make run." in text
    results["ingest"]["real_docs"].update(rounds("ratio_to_raw_encode", 0.6, 0.01))
    assert judged(results)[target] is False
    assert "## Real documents" not in report.render(RESULTS)
