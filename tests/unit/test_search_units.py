"""Pure parts of search: fusion, cursors, app-side stemming, typed metadata, metrics,
query validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from myaiserv.config import load_settings
from myaiserv.evaluation import metrics
from myaiserv.kit.validation import InvalidInputError
from myaiserv.search import fusion
from myaiserv.search.analysis import stems
from myaiserv.search.client import create_es_client
from myaiserv.search.cursor import Cursor, decode, fingerprint
from myaiserv.search.metadata import coerce, typed
from myaiserv.search.query import filter_clauses, text_query
from myaiserv.search.schemas import Filters


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


def test_cursor_round_trip_and_refusals():
    fp = fingerprint("tenant", {"query": "x"})
    cursor = Cursor(pit="p1", fingerprint=fp, offset=20, window=100)
    assert decode(cursor.encode(), fp) == cursor
    assert decode(Cursor("p", fp, after=[1.5, 7]).encode(), fp).after == [1.5, 7]
    with pytest.raises(InvalidInputError, match="another search"):
        decode(cursor.encode(), fingerprint("other-tenant", {"query": "x"}))
    for bad in ("", "%%%", "eyJ2IjoyfQ", Cursor("p", fp, offset=-1).encode()):
        with pytest.raises(InvalidInputError, match="cursor"):
            decode(bad, fp)


def test_stems_drop_stop_words_and_conflate_forms():
    assert stems("The indexing of Libraries' catalogues") == stems("index library catalogue")
    assert stems("the of and") == ""
    assert stems("Running runs", "none") == ""


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (1990, "long", 1990),
        ("1990", "long", 1990),
        ("19.5", "long", None),
        (True, "long", None),
        ("2.5", "double", 2.5),
        (math.inf, "double", None),
        ("yes", "boolean", True),
        ("maybe", "boolean", None),
        ("2020-10-01", "date", "2020-10-01T00:00:00+00:00"),
        ("soon", "date", None),
        (3, "keyword", "3"),
        ({"a": 1}, "keyword", None),
    ],
)
def test_metadata_values_are_coerced_to_their_declared_type(value, kind, expected):
    assert coerce(value, kind) == expected


def test_only_whitelisted_metadata_is_typed():
    fields = {"year": "long", "lang": "keyword"}
    assert typed({"year": "2001", "colour": "red", "lang": None}, fields) == {"year": 2001}


def test_tenant_filter_is_always_first_and_filters_are_anded():
    clauses = filter_clauses(
        "t1",
        Filters(tags=["a", "b"], metadata={"year": {"gte": 2000}}),
        ["documents"],
        {"year": "long"},
    )
    assert clauses[0] == {"term": {"tenant_id": "t1"}}
    assert {"term": {"tags": "a"}} in clauses and {"term": {"tags": "b"}} in clauses
    assert {"range": {"meta.year": {"gte": 2000}}} in clauses
    with pytest.raises(InvalidInputError, match=r"filters\.metadata\.colour"):
        filter_clauses("t1", Filters(metadata={"colour": "red"}), ["documents"], {})


def test_user_text_is_never_parsed_as_query_syntax():
    from myaiserv.search.query import Plan

    plan = Plan(
        tenant_id="t", query='title:(x OR "y"', kinds=["documents"], mode="bm25", size=10,
        filters=[], facets=[], histogram=None, fields=[], highlight=True, collapse=False,
        window=10, rrf_k=60, weights={}, num_candidates=10, stemmer="none",
    )  # fmt: skip
    assert "multi_match" in text_query(plan)
    assert "query_string" not in str(text_query(plan))


def test_ranking_metrics():
    judged = {"a": 1, "b": 1, "c": 1}
    assert metrics.ndcg(["a", "b", "c"], judged) == pytest.approx(1.0)
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert metrics.ndcg(["x", "a"], judged) == pytest.approx((1 / math.log2(3)) / ideal)
    assert metrics.average_precision(["a", "x", "b"], judged) == pytest.approx((1 + 2 / 3) / 3)
    assert metrics.recall(["a", "x"], judged, 100) == pytest.approx(1 / 3)
    assert metrics.ndcg([], {}) == 0.0


def test_the_es_client_writes_float32_vectors_exactly():
    """Bulk bodies carry numpy float32 vectors as they are: what Elasticsearch parses back
    (to float32) is the very vector the embedder gave."""
    client = create_es_client(load_settings(es_url="http://127.0.0.1:1"))
    serializer = client.transport.serializers.get_serializer("application/json")
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    vector /= np.linalg.norm(vector)
    body = serializer.dumps({"embedding": vector, "title": "t", "n": 1})
    parsed = json.loads(body)
    assert parsed["title"] == "t" and parsed["n"] == 1
    assert np.array_equal(np.asarray(parsed["embedding"], dtype=np.float32), vector)
