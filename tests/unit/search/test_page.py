"""From Elasticsearch's answers (as dicts) to a page: fusion, the window kept for later
pages, totals, hits, facets and histograms."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from myaiserv.config import SearchSettings
from myaiserv.search import page
from myaiserv.search.fusion import single
from myaiserv.search.plan import Plan, plan_of
from myaiserv.search.schemas import FacetBucket, HistogramBucket, SearchRequest, Total
from myaiserv.search.window import Entry, Window


def plan(**body: Any) -> Plan:
    return plan_of(msgspec.convert(body, SearchRequest), SearchSettings(), "t1")


def hit(id_: str, score: float | None = 1.0, *, document: str = "", **extra: Any) -> dict:
    source = {"kind": "documents", "type": "chunk", "document_id": document or id_, "title": id_}
    return {"_id": id_, "_index": "i", "_score": score, "_source": source, **extra}


def answer(hits: list[dict], total: int = 0, relation: str = "eq") -> dict:
    return {"took": 3, "hits": {"total": {"value": total, "relation": relation}, "hits": hits}}


def bucket(key: Any, count: int, chunks: int = 0, documents: int = 0, **extra: Any) -> dict:
    return {
        "key": key,
        "doc_count": count,
        "chunks": {"doc_count": chunks, "documents": {"value": documents}},
        **extra,
    }


def ids(response) -> list[str]:
    return [h.id for h in response.hits]


def test_a_hybrid_first_page_is_the_head_of_the_fused_window_kept_for_later_pages():
    p = plan(query="x", size=2, fusion="rrf")
    answers = {
        "bm25": answer([hit("a", 9.0), hit("b", 8.0), hit("c", 7.0)], total=30),
        "vector": answer([hit("c", 0.9), hit("d", 0.8)]),
    }
    fused, kept = page.window(p, answers, depth=100)
    first = page.response(p, fused[:2], kept, "next")
    assert ids(first) == ["c", "a"]  # c is in both lists
    c = first.hits[0]
    assert (c.ranks, c.scores) == ({"bm25": 3, "vector": 1}, {"bm25": 7.0, "vector": 0.9})
    assert c.score == round(1 / 63 + 1 / 61, 6)
    assert first.total == Total(value=30, relation="gte")  # a lower bound
    assert first.next_cursor == "next"
    assert [(e.kind, e.id) for e in kept.entries] == [("documents", i) for i in "cabd"]
    assert kept.entries[0] == Entry(
        "documents/c", "documents", "c", 1 / 63 + 1 / 61, c.ranks, {"bm25": 7.0, "vector": 0.9}
    )
    assert not kept.more  # hybrid ends with its window
    # The window survives Redis's encoding as it was.
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(kept), type=Window) == kept


def test_a_later_page_is_the_windows_order_with_its_hits_read_again():
    p = plan(query="x", size=2)
    answers = {"bm25": answer([hit("a", 9.0), hit("b", 8.0), hit("c", 7.0)], total=3)}
    _, kept = page.window(plan(query="x", mode="bm25", collapse=True), answers, depth=10)
    # Read again by id, in Elasticsearch's order, one deleted since (a).
    again = answer([hit("c", None, highlight={"text": ["<mark>c</mark>"]}), hit("b", None)])
    later = page.restored(kept.entries, again)
    assert [(f.hit["_id"], f.score) for f in later] == [("b", 8.0), ("c", 7.0)]
    shaped = page.response(p, later, kept, None)
    assert shaped.hits[1].highlights == {"text": ["<mark>c</mark>"]}
    assert shaped.hits[0].ranks == {"bm25": 2} and shaped.total == kept.total


def test_bm25_and_browsing_say_whether_hits_lie_past_the_window():
    p = plan(query="x", mode="bm25", size=1)
    hits = [hit("a", 3.0), hit("b", 2.0)]
    assert page.window(p, {"page": answer(hits, 40)}, depth=2)[1].more
    assert not page.window(p, {"page": answer(hits, 2)}, depth=2)[1].more
    assert not page.window(p, {"page": answer(hits, 40)}, depth=3)[1].more
    past = page.beyond(p, answer([{**hit("c", 1.0), "sort": [1.0, 4]}]))
    assert [(f.hit["_id"], f.ranks) for f in past] == [("c", {"bm25": 1})]


def test_collapsing_keeps_one_hit_per_document():
    p = plan(query="x", mode="vector", collapse=True)
    answers = {
        "vector": answer(
            [hit("d1:0", document="d1"), hit("d1:3", document="d1"), hit("d2:0", document="d2")]
        )
    }
    fused, kept = page.window(p, answers, depth=10)
    response = page.response(p, fused, kept, None)
    assert ids(response) == ["d1:0", "d2:0"]
    assert [e.id for e in kept.entries] == ["d1:0", "d2:0"]
    assert response.hits[0].ranks == {"vector": 1} and response.mode == "vector"


def test_a_bm25_page_is_elasticsearchs_order_with_its_total():
    p = plan(query="x", mode="bm25", size=2)
    hits = [hit("a", 3.0), hit("b", 2.0)]
    fused, kept = page.window(p, {"page": answer(hits, 40, "gte")}, depth=100)
    response = page.response(p, fused, kept, None)
    assert ids(response) == ["a", "b"] and response.hits[1].ranks == {"bm25": 2}
    assert response.total == Total(value=40, relation="gte")


def test_browsing_reports_bm25_mode_and_zero_scores():
    p = plan(filters={"tags": ["a"]})
    fused, kept = page.window(p, {"page": answer([hit("a", None)], 1)}, depth=100)
    response = page.response(p, fused, kept, None)
    assert response.mode == "bm25"
    assert (response.hits[0].score, response.hits[0].ranks) == (0.0, {"browse": 1})


@pytest.mark.parametrize(
    ("answers", "fused", "expected"),
    [
        ({"summary": answer([], 12), "bm25": answer([], 50)}, 3, Total(value=12, relation="eq")),
        ({"page": answer([], 10_000, "gte")}, 0, Total(value=10_000, relation="gte")),
        ({"bm25": answer([], 5), "vector": answer([])}, 8, Total(value=8, relation="gte")),
        ({"bm25": answer([], 50), "vector": answer([])}, 8, Total(value=50, relation="gte")),
        ({"vector": answer([])}, 4, Total(value=4, relation="gte")),
    ],
)  # fmt: skip
def test_totals(answers: dict, fused: int, expected: Total):
    assert page.total(answers, fused) == expected


def test_a_hit_shows_its_fields_and_highlights_but_not_kind_and_type():
    chunk = hit("c1", 2.5, document="d1", highlight={"text": ["<mark>x</mark>"]})
    (entry,) = single("bm25", [chunk])
    shaped = page.hit(entry, plan(query="x"))
    assert (shaped.id, shaped.kind, shaped.type, shaped.score) == ("c1", "documents", "chunk", 2.5)
    assert shaped.fields == {"document_id": "d1", "title": "c1"}
    assert shaped.highlights == {"text": ["<mark>x</mark>"]}
    # Other kinds carry document_id only when asked for.
    run = {
        "_id": "r1",
        "_index": "i",
        "_score": 1.0,
        "_source": {"kind": "runs", "type": "run", "document_id": "d1"},
    }
    (entry,) = single("bm25", [run])
    assert page.hit(entry, plan(query="x", kinds=["runs"])).fields == {}
    assert page.hit(entry, plan(query="x", fields=["document_id"])).fields == {"document_id": "d1"}


def test_facets_count_entities_most_first_then_by_value():
    p = plan(query="x", facets=["tags", "source"])
    summary = {
        "aggregations": {
            "facet:tags": {
                "buckets": [
                    bucket("bio", 10, chunks=9, documents=2),  # 1 entry + 2 documents
                    bucket("alpha", 3),
                    bucket("zeta", 3),
                ]
            },
            "facet:source": {"buckets": [bucket(1, 1, key_as_string="true")]},
        }
    }
    assert page.facets(summary, p) == {
        "tags": [FacetBucket("alpha", 3), FacetBucket("bio", 3), FacetBucket("zeta", 3)],
        "source": [FacetBucket("true", 1)],
    }
    assert page.facets(None, p) == {} and page.facets(summary, plan(query="x")) == {}


def test_histogram_buckets_count_entities():
    p = plan(query="x", histogram={"interval": "month"})
    summary = {
        "aggregations": {
            "histogram": {
                "buckets": [
                    bucket(0, 4, chunks=4, documents=1, key_as_string="2026-01-01T00:00:00.000Z"),
                    bucket(1, 0, key_as_string="2026-02-01T00:00:00.000Z"),
                ]
            }
        }
    }
    assert page.histogram(summary, p) == [
        HistogramBucket("2026-01-01T00:00:00.000Z", 1),
        HistogramBucket("2026-02-01T00:00:00.000Z", 0),
    ]
    assert page.histogram(summary, plan(query="x")) is None
