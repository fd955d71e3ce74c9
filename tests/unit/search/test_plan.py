"""From a search request to a validated plan: defaults, filter clauses, and every refusal
naming its field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from myaiserv.config import SearchSettings
from myaiserv.kit.validation import InvalidInputError
from myaiserv.search.plan import Plan, filter_clauses, plan_of
from myaiserv.search.schemas import Filters, SearchRequest

EARLIER, LATER = "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"
TENANT = {"term": {"tenant_id": "t1"}}
SETTINGS = SearchSettings(metadata_fields={"year": "long", "lang": "keyword", "score": "double"})


def plan(**body: Any) -> Plan:
    return plan_of(msgspec.convert(body, SearchRequest), SETTINGS, "t1")


def field_of(**body: Any) -> str:
    with pytest.raises(InvalidInputError) as caught:
        plan(**body)
    return caught.value.field


def test_defaults_come_from_the_settings():
    p = plan(query="  Cells divide  ")
    assert (p.tenant_id, p.query, p.mode, p.size) == ("t1", "Cells divide", "hybrid", 10)
    assert p.kinds == ["documents", "prompts", "conversations", "runs"]
    assert p.filters == [TENANT]
    assert (p.window, p.rrf_k, p.num_candidates) == (100, 60, 100)
    assert (p.fusion, p.normalizer) == ("linear", "minmax")
    assert p.weights == {"bm25": 1.0, "vector": 1.0}
    assert (p.facets, p.histogram, p.fields) == ([], None, [])
    assert (p.highlight, p.collapse, p.stemmer) == (True, False, "english")
    assert p.meta_fields == {"year": "long", "lang": "keyword", "score": "double"}


def test_the_request_overrides_and_duplicates_collapse():
    p = plan(
        query="x", kinds=["runs", "documents", "runs"], mode="bm25", size=50, window=10,
        rrf_k=5, num_candidates=7, weights={"bm25": 0.5, "vector": 2},
        facets=["tags", "tags", "metadata.year"], histogram={"field": "updated_at"},
        fields=["text", "text"], highlight=False, collapse=True,
    )  # fmt: skip
    assert p.kinds == ["runs", "documents"]
    assert (p.size, p.window) == (50, 50)  # the window is at least one page
    assert (p.rrf_k, p.num_candidates) == (5, 7)
    assert p.weights == {"bm25": 0.5, "vector": 2.0}
    assert p.facets == ["tags", "metadata.year"]
    assert p.histogram == ("updated_at", "day")
    assert p.fields == ["text"]


def test_a_parameter_of_one_fusion_chooses_it_when_none_is_named():
    assert plan(query="x").fusion == "linear"  # the settings' default
    assert (plan(query="x", rrf_k=5).fusion, plan(query="x", rrf_k=5).rrf_k) == ("rrf", 5)
    assert plan(query="x", normalizer="zscore").fusion == "linear"
    assert plan(query="x", fusion="rrf").fusion == "rrf"


def test_linear_fusion_takes_its_normalizer_from_the_request_or_the_settings():
    p = plan(query="x", fusion="linear")
    assert (p.fusion, p.normalizer) == ("linear", "minmax")
    assert plan(query="x", fusion="linear", normalizer="zscore").normalizer == "zscore"


@pytest.mark.parametrize(
    ("query", "mode", "collapse", "needs_vector", "windowed", "label"),
    [
        ("x", "hybrid", False, True, True, "hybrid"),
        ("x", "vector", False, True, True, "vector"),
        ("x", "bm25", False, False, False, "bm25"),
        ("x", "bm25", True, False, True, "bm25"),
        ("", "hybrid", False, False, False, "browse"),
        ("", "hybrid", True, False, False, "browse"),
    ],
)
def test_what_a_plan_reads(query, mode, collapse, needs_vector, windowed, label):
    p = plan(query=query, mode=mode, collapse=collapse, filters={"tags": ["a"]})
    assert (p.needs_vector, p.windowed, p.label) == (needs_vector, windowed, label)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "a\x00b"}, "query"),
        ({"query": "x" * 8001}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x", "size": 0}, "size"),
        ({"query": "x", "size": 101}, "size"),
        ({"query": "x", "rrf_k": 0}, "rrf_k"),
        ({"query": "x", "fusion": "linear", "rrf_k": 10}, "rrf_k"),
        ({"query": "x", "rrf_k": 10, "normalizer": "zscore"}, "normalizer"),
        ({"query": "x", "mode": "bm25", "fusion": "linear"}, "fusion"),
        ({"query": "x", "num_candidates": 10_001}, "num_candidates"),
        ({"query": "x", "weights": {"bm25": 101}}, "weights.bm25"),
        ({"query": "x", "weights": {"bm25": 0, "vector": 0}}, "weights"),
        ({"query": "x", "window": 0}, "window"),
        ({"query": "x", "window": 1001}, "window"),
        ({"query": "x", "kinds": []}, "kinds"),
        ({"query": "x", "kinds": ["documents", "notes"]}, "kinds[1]"),
        ({"query": "x", "facets": ["colour"]}, "facets[0]"),
        ({"query": "x", "facets": ["metadata.score"]}, "facets[0]"),
        ({"query": "x", "kinds": ["prompts"], "facets": ["role"]}, "facets[0]"),
        ({"query": "x", "kinds": ["prompts"], "facets": ["metadata.year"]}, "facets[0]"),
        ({"query": "x", "fields": ["tenant_id"]}, "fields[0]"),
        ({"query": "x", "kinds": ["runs"], "fields": ["text"]}, "fields[0]"),
        ({"query": "x", "kinds": ["prompts"], "filters": {"role": ["user"]}}, "filters.role"),
        ({"query": "x", "filters": {"created_at": {}}}, "filters.created_at"),
        (
            {"query": "x", "filters": {"created_at": {"gte": LATER, "lt": EARLIER}}},
            "filters.created_at",
        ),
        ({"query": "x", "filters": {"tags": []}}, "filters.tags"),
        ({"query": "x", "filters": {"source": [""]}}, "filters.source[0]"),
        ({"query": "x", "filters": {"metadata": {}}}, "filters.metadata"),
        ({"query": "x", "filters": {"metadata": {"colour": "red"}}}, "filters.metadata.colour"),
        ({"query": "x", "filters": {"metadata": {"year": "1990s"}}}, "filters.metadata.year"),
        ({"query": "x", "filters": {"metadata": {"year": [1, "x"]}}}, "filters.metadata.year[1]"),
        ({"query": "x", "filters": {"metadata": {"lang": {"gte": "a"}}}}, "filters.metadata.lang"),
        (
            {"query": "x", "filters": {"metadata": {"year": {"gte": 2, "lte": 1}}}},
            "filters.metadata.year",
        ),
        (
            {"query": "x", "filters": {"metadata": {"year": {"gte": 1, "near": 2}}}},
            "filters.metadata.year",
        ),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(body: dict[str, Any], field: str):
    assert field_of(**body) == field


def test_tenant_filter_is_always_first_and_filters_are_anded():
    clauses = filter_clauses(
        "t1",
        Filters(tags=["a", "b"], metadata={"year": {"gte": 2000}}),
        ["documents"],
        {"year": "long"},
    )
    assert clauses[0] == TENANT
    assert {"term": {"tags": "a"}} in clauses and {"term": {"tags": "b"}} in clauses
    assert {"range": {"meta.year": {"gte": 2000}}} in clauses
    with pytest.raises(InvalidInputError, match=r"filters\.metadata\.colour"):
        filter_clauses("t1", Filters(metadata={"colour": "red"}), ["documents"], {})


def test_each_filter_becomes_its_clause():
    p = plan(
        filters={
            "type": ["chunk"],
            "document_id": ["d1"],
            "created_at": {"gte": "2020-01-01T00:00:00", "lt": "2021-01-01T00:00:00+02:00"},
            "metadata": {"lang": ["en", "de"], "score": 4.5, "year": {"lt": 2001}},
        }
    )
    assert p.filters == [
        TENANT,
        {"terms": {"type": ["chunk"]}},
        # Chunks carry their document's id; runs the ids of the documents they used.
        {
            "bool": {
                "should": [{"terms": {"document_id": ["d1"]}}, {"terms": {"document_ids": ["d1"]}}],
                "minimum_should_match": 1,
            }
        },
        {
            "range": {
                "created_at": {
                    "gte": "2020-01-01T00:00:00+00:00",
                    "lt": "2021-01-01T00:00:00+02:00",
                }
            }
        },
        {"terms": {"meta.lang": ["en", "de"]}},
        {"term": {"meta.score": 4.5}},
        {"range": {"meta.year": {"lt": 2001}}},
    ]
