"""Reciprocal rank fusion and collapsing, on hits as dicts."""

from __future__ import annotations

import pytest

from myaiserv.search import fusion


def hit(id_: str, score: float = 1.0, document: str | None = None) -> dict:
    source = {"kind": "documents", "type": "chunk", "document_id": document or id_}
    return {"_id": id_, "_index": "i", "_score": score, "_source": source}


def test_rrf_sums_reciprocal_ranks_and_keeps_each_lists_rank():
    fused = fusion.rrf(
        {"bm25": [hit("a"), hit("b"), hit("c")], "vector": [hit("c"), hit("d")]}, k=60
    )
    by_id = {f.hit["_id"]: f for f in fused}
    assert by_id["c"].score == pytest.approx(1 / 63 + 1 / 61)
    assert by_id["c"].ranks == {"bm25": 3, "vector": 1}
    assert by_id["d"].ranks == {"bm25": None, "vector": 2}
    assert [f.hit["_id"] for f in fused] == ["c", "a", "b", "d"]


def test_rrf_weights_and_ties_are_deterministic():
    lists = {"bm25": [hit("a")], "vector": [hit("b")]}
    tied = fusion.rrf(lists)
    assert [f.hit["_id"] for f in tied] == ["a", "b"]  # equal scores, equal best ranks: by key
    weighted = fusion.rrf(lists, weights={"bm25": 0.5, "vector": 1.0})
    assert [f.hit["_id"] for f in weighted] == ["b", "a"]


def test_collapse_keeps_each_documents_best_chunk():
    hits = [hit("d1:0", document="d1"), hit("d1:1", document="d1"), hit("d2:0", document="d2")]
    kept = fusion.dedupe(hits, fusion.document_key)
    assert [h["_id"] for h in kept] == ["d1:0", "d2:0"]
