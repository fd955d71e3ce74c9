"""The report's section on the two embedding models side by side (``bench/models.py``), and
the README's block of it."""

from __future__ import annotations

from typing import Any

from bench.spread import Spread

MODES = ("bm25", "vector", "hybrid", "hybrid-rrf")


def _cell(figures: dict[str, Any], key: str, fmt: str = "{:.1f}") -> str:
    spread = Spread.of(figures, key)
    return spread.cell(fmt) if spread else ""


def _ndcg(figures: dict[str, Any], mode: str) -> str:
    found = figures.get("relevance", {}).get(mode)
    return f"{found['ndcg@10']:.4f}" if found else ""


def rows(results: dict[str, Any]) -> list[str]:
    """One row per model: relevance per mode, encode, ingest and uncached search."""
    models = results.get("models") or {}
    lines = [
        (
            "| model | nDCG@10 bm25 | vector | hybrid (linear) | hybrid (rrf) | raw encode, "
            "chunks/s | ingest, chunks/s | uncached hybrid p50, ms | direct p50, ms | API / "
            "direct |"
        ),
        "| --- " * 10 + "|",
    ]
    for model, f in models.items():
        lines.append(
            f"| {model} | "
            + " | ".join(_ndcg(f, mode) for mode in MODES)
            + f" | {_cell(f, 'raw_encode_chunks_per_s')} | {_cell(f, 'ingest_chunks_per_s')} "
            f"| {_cell(f, 'search_p50_ms')} | {_cell(f, 'direct_p50_ms')} "
            f"| {_cell(f, 'search_vs_direct', '{:.2f}')} |"
        )
    return lines


def section(results: dict[str, Any]) -> list[str]:
    if not results.get("models"):
        return []
    how = (results.get("_method", {}).get("models") or {}).get("how", "")
    return [
        "## Embedding models side by side",
        "",
        "CISI on each model in a deployment of its own; relevance over 76 judged queries.",
        "",
        *rows(results),
        "",
        f"How: {how}",
        "",
    ]


def readme_block(results: dict[str, Any]) -> list[str]:
    return rows(results) if results.get("models") else ["(not measured yet: `make bench-models`)"]
