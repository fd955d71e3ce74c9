"""Every search body as a dict: what reaches Elasticsearch for each mode, page and summary."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from myaiserv.config import SearchSettings
from myaiserv.search import query as q
from myaiserv.search.analysis import stems
from myaiserv.search.fields import DEFAULT_FIELDS
from myaiserv.search.plan import Plan, plan_of
from myaiserv.search.schemas import SearchRequest

TENANT = {"term": {"tenant_id": "t1"}}
TAGGED = [TENANT, {"term": {"tags": "bio"}}]
DOCUMENT_SOURCE = {
    "includes": sorted({*DEFAULT_FIELDS["documents"], "kind", "type", "document_id"})
}
VECTOR = [0.1, 0.2]


def plan(stemmer: str = "none", **body: Any) -> Plan:
    settings = SearchSettings(app_stemmer=stemmer, metadata_fields={"year": "long"})
    return plan_of(msgspec.convert(body, SearchRequest), settings, "t1")


def docs(**body: Any) -> Plan:
    return plan(kinds=["documents"], **body)


def test_user_text_is_never_parsed_as_query_syntax():
    p = docs(query='title:(x OR "y"', mode="bm25")
    assert q.text_query(p) == {
        "multi_match": {
            "query": 'title:(x OR "y"',
            "fields": ["title^2", "heading^1.5", "text"],
            "type": "best_fields",
        }
    }
    assert "query_string" not in str(q.bm25_body(p, 10))


def test_app_side_stems_are_matched_when_stemming_in_our_code():
    p = docs(stemmer="english", query="Running the catalogues")
    assert q.text_query(p) == {"match": {"stems": {"query": stems("Running the catalogues")}}}
    # Only stop words: no stems left, so the natural text fields are searched.
    assert "multi_match" in q.text_query(docs(stemmer="english", query="the of"))


def test_text_fields_cover_every_searched_kind():
    fields = q.text_query(plan(query="x", kinds=["prompts", "runs"]))["multi_match"]["fields"]
    assert fields == ["name^2", "description", "template", "input", "output", "error"]


def test_highlights_mark_escaped_snippets_of_the_query_only():
    p = plan(query="cells", kinds=["documents", "conversations"])
    fields = ["text", "title", "content"]
    assert q.highlight(p) == {
        "encoder": "html",
        "pre_tags": ["<mark>"],
        "post_tags": ["</mark>"],
        "fragment_size": 160,
        "number_of_fragments": 2,
        "require_field_match": False,
        "max_analyzed_offset": 1_000_000,
        "highlight_query": {
            "multi_match": {"query": "cells", "fields": fields, "type": "best_fields"}
        },
        "fields": {"text": {}, "title": {}, "content": {}},
    }
    assert q.highlight(docs(query="cells", highlight=False)) is None
    assert q.highlight(docs(filters={"tags": ["bio"]})) is None  # no text: nothing to mark


def test_bm25_body():
    p = docs(query="cells", mode="bm25", highlight=False, filters={"tags": ["bio"]})
    assert q.bm25_body(p, 7) == {
        "query": {"bool": {"must": [q.text_query(p)], "filter": TAGGED}},
        "size": 7,
        "_source": DOCUMENT_SOURCE,
        "track_total_hits": True,
    }
    assert q.bm25_body(docs(query="cells"), 7)["highlight"] == q.highlight(docs(query="cells"))


def test_asked_fields_are_returned_too():
    includes = q.bm25_body(docs(query="x", fields=["text", "embedding"]), 1)["_source"]
    assert {"text", "embedding"} <= set(includes["includes"])
    assert "text" not in DOCUMENT_SOURCE["includes"]


def test_knn_filters_inside_the_search_and_asks_enough_candidates():
    p = docs(query="cells", mode="vector", highlight=False, num_candidates=50)
    assert q.knn_body(p, VECTOR, 80) == {
        "knn": {
            "field": "embedding",
            "query_vector": VECTOR,
            "k": 80,
            "num_candidates": 80,  # never fewer than k
            "filter": {"bool": {"filter": [TENANT]}},
        },
        "size": 80,
        "_source": DOCUMENT_SOURCE,
    }
    assert q.knn_clause(p, VECTOR, 10)["num_candidates"] == 50
    assert q.candidates(100, 20_000) == 10_000  # Elasticsearch's ceiling


def test_browse_body_lists_the_filtered_entries():
    p = docs(filters={"tags": ["bio"]})
    assert q.browse_body(p, 5) == {
        "query": {"bool": {"filter": TAGGED}},
        "size": 5,
        "_source": DOCUMENT_SOURCE,
        "track_total_hits": True,
    }


def test_aggregations_count_entities_not_chunks():
    p = plan(
        query="x",
        kinds=["documents", "prompts"],
        facets=["tags", "metadata.year", "prompt"],
        histogram={"interval": "week"},
    )
    counted = {
        "chunks": {
            "filter": {"term": {"type": "chunk"}},
            "aggs": {
                "documents": {"cardinality": {"field": "document_id", "precision_threshold": 40000}}
            },
        }
    }
    assert q.aggregations(p) == {
        "facet:tags": {"terms": {"field": "tags", "size": 50}, "aggs": counted},
        "facet:metadata.year": {"terms": {"field": "meta.year", "size": 50}, "aggs": counted},
        "facet:prompt": {"terms": {"field": "name.raw", "size": 50}, "aggs": counted},
        "histogram": {
            "date_histogram": {"field": "created_at", "calendar_interval": "week"},
            "aggs": counted,
        },
    }


@pytest.mark.parametrize(
    ("mode", "text", "query", "knn"),
    [
        ("hybrid", True, True, True),  # the union of both lists
        ("bm25", True, True, False),
        ("vector", True, False, True),
        ("hybrid", False, True, False),  # browsing: the filtered entries
    ],
)
def test_summary_aggregates_over_what_the_search_reads(mode, text, query, knn):
    p = docs(query="cells" if text else "", mode=mode, facets=["tags"], filters={"tags": ["bio"]})
    body = q.summary_body(p, VECTOR if p.needs_vector else None, 30)
    assert (body["size"], body["track_total_hits"]) == (0, True)
    assert body["aggs"] == q.aggregations(p)
    assert ("query" in body, "knn" in body) == (query, knn)
    if query:
        must = {"must": [q.text_query(p)]} if text else {}
        assert body["query"] == {"bool": {**must, "filter": TAGGED}}
    if knn:
        assert body["knn"] == q.knn_clause(p, VECTOR, 30)


def test_a_hybrid_page_reads_the_same_window_of_both_lists():
    p = docs(query="cells", facets=["tags"])
    bodies = q.page_bodies(p, VECTOR, depth=40)
    assert bodies == {
        "bm25": q.bm25_body(p, 40),
        "vector": q.knn_body(p, VECTOR, 40),
        "summary": q.summary_body(p, VECTOR, 40),
    }


@pytest.mark.parametrize(
    ("mode", "collapse", "name"), [("vector", False, "vector"), ("bm25", True, "bm25")]
)
def test_single_list_windows(mode: str, collapse: bool, name: str):
    p = docs(query="cells", mode=mode, collapse=collapse)
    bodies = q.page_bodies(p, VECTOR if p.needs_vector else None, depth=25)
    assert list(bodies) == [name] and bodies[name]["size"] == 25
    assert "sort" not in bodies[name] and "search_after" not in bodies[name]


def test_a_bm25_first_page_reads_its_window_sorted_by_score():
    p = docs(query="cells", mode="bm25", size=3)
    first = q.page_bodies(p, None, depth=100)
    assert first == {"page": {**q.bm25_body(p, 100), "sort": [{"_score": "desc"}]}}
    assert "pit" not in first["page"] and "search_after" not in first["page"]


def test_pages_past_the_window_leave_it_out_and_continue_after_the_last_hit():
    p = docs(query="cells", mode="bm25", size=3)
    body = q.beyond_body(p, ["a", "b"], None)
    assert body["size"] == 3 and "search_after" not in body
    assert body["query"]["bool"]["must"] == [q.text_query(p)]
    assert body["query"]["bool"]["filter"] == p.filters
    assert body["query"]["bool"]["must_not"] == [{"ids": {"values": ["a", "b"]}}]
    assert body["sort"] == [{"_score": "desc"}, {"_shard_doc": "asc"}]
    assert q.beyond_body(p, ["a"], [1.5, 42])["search_after"] == [1.5, 42]
    browsing = q.beyond_body(docs(filters={"tags": ["bio"]}, size=4), ["a"], None)
    assert browsing["sort"] == [{"updated_at": "desc"}, {"_shard_doc": "asc"}]


def test_a_later_page_reads_its_hits_by_id_with_the_tenant_filter_and_highlights():
    p = docs(query="cells")
    body = q.hits_body(p, ["a", "b"])
    assert body["query"] == {"bool": {"filter": [*p.filters, {"ids": {"values": ["a", "b"]}}]}}
    assert body["size"] == 2 and body["highlight"] == q.highlight(p)
    assert body["_source"] == q.bm25_body(p, 1)["_source"]


def test_browsing_is_newest_first():
    p = docs(filters={"tags": ["bio"]}, size=4, histogram={})
    bodies = q.page_bodies(p, None, depth=100)
    assert bodies["page"] == {**q.browse_body(p, 100), "sort": [{"updated_at": "desc"}]}
    assert bodies["summary"] == q.summary_body(p, None, 100)


def test_chunks_body_reads_one_documents_chunks_in_text_order():
    body = q.chunks_body("t1", "d1", after=None, size=50)
    assert body["query"]["bool"]["filter"] == [
        {"term": {"tenant_id": "t1"}},
        {"term": {"type": "chunk"}},
        {"term": {"document_id": "d1"}},
    ]
    assert body["sort"] == [{"position": "asc"}] and body["size"] == 50
    assert "embedding" not in body["_source"]["includes"]
    assert "search_after" not in body
    assert q.chunks_body("t1", "d1", after=49, size=50)["search_after"] == [49]
