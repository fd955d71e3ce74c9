"""Reciprocal rank and linear fusion, and collapsing, on hits as dicts."""

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


def test_minmax_and_zscore_normalise_a_lists_scores() -> None:
    assert fusion.normalised([10.0, 6.0, 2.0], "minmax") == [1.0, 0.5, 0.0]
    assert fusion.normalised([3.0, 3.0], "minmax") == [1.0, 1.0]  # each is the list's best
    assert fusion.normalised([3.0, 1.0], "zscore") == [1.0, -1.0]
    assert fusion.normalised([2.0], "zscore") == [0.0]
    assert fusion.normalised([], "minmax") == []


def test_linear_fusion_weighs_score_margins_that_rrf_ignores() -> None:
    # bm25: "a" far ahead of the rest; vector: "b" barely ahead of "a". By ranks the two
    # tie (each first once, second once); by scores "a" wins clearly.
    lists = {
        "bm25": [hit("a", 30.0), hit("b", 5.0), hit("c", 4.0)],
        "vector": [hit("b", 0.90), hit("a", 0.89), hit("c", 0.50)],
    }
    fused = fusion.linear(lists, normalizer="minmax")
    by_id = {f.hit["_id"]: f for f in fused}
    assert by_id["a"].score == pytest.approx(1.0 + 0.39 / 0.40)
    assert by_id["b"].score == pytest.approx(1 / 26 + 1.0)
    assert [f.hit["_id"] for f in fused] == ["a", "b", "c"]
    # Ranks and raw scores stay visible per list.
    assert by_id["a"].ranks == {"bm25": 1, "vector": 2}
    assert by_id["a"].scores == {"bm25": 30.0, "vector": 0.89}
    tied = fusion.rrf(lists)
    assert tied[0].score == pytest.approx(tied[1].score)


def test_a_hit_missing_from_a_list_counts_at_that_lists_lowest() -> None:
    lists = {"bm25": [hit("a", 9.0), hit("b", 3.0), hit("c", 1.0)], "vector": [hit("d", 0.8)]}
    by_id = {f.hit["_id"]: f for f in fusion.linear(lists, normalizer="zscore")}
    lowest_bm25 = fusion.normalised([9.0, 3.0, 1.0], "zscore")[-1]
    # "d": only in vector (z 0 there, a one-hit list), at bm25's lowest z in bm25.
    assert by_id["d"].score == pytest.approx(0.0 + lowest_bm25)
    assert by_id["c"].score == pytest.approx(lowest_bm25 + 0.0)
    assert by_id["d"].ranks == {"bm25": None, "vector": 1}


def test_linear_weights_scale_each_list() -> None:
    lists = {"bm25": [hit("a", 2.0), hit("b", 1.0)], "vector": [hit("b", 0.9), hit("a", 0.1)]}
    assert [f.hit["_id"] for f in fusion.linear(lists)] == ["a", "b"]  # tied 1-1: by key
    leaning = fusion.linear(lists, weights={"bm25": 1.0, "vector": 2.0})
    assert [f.hit["_id"] for f in leaning] == ["b", "a"]
