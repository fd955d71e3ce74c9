"""The runs search body as a dict: tenant filter, text query, sorts, cursors, checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from myaiserv.kit import cursor as codec
from myaiserv.kit.validation import InvalidInputError
from myaiserv.runs.schemas import RunSearchRequest
from myaiserv.runs.search import build_search, parse_response

TENANT = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


def plan(body: dict[str, Any], max_page_size: int = 200):
    return build_search(
        msgspec.convert(body, RunSearchRequest), TENANT, max_page_size=max_page_size
    )


def encode_cursor(after: list[Any], fp: str) -> str:
    return codec.encode({"a": after}, bound_to=fp)


def field_of(body: dict[str, Any], max_page_size: int = 200) -> str:
    with pytest.raises(InvalidInputError) as exc:
        plan(body, max_page_size)
    return exc.value.field


def test_defaults_without_query():
    body = plan({}).body
    assert body["query"] == {"bool": {"filter": [{"term": {"tenant_id": str(TENANT)}}]}}
    assert body["sort"] == [
        {"created_at": {"order": "desc", "missing": "_last"}},
        {"run_id": {"order": "asc"}},
    ]
    assert body["size"] == 21 and body["track_total_hits"] is True
    assert "embedding" not in body["_source"]["includes"]
    assert "input" not in body["_source"]["includes"]
    assert "highlight" not in body and "aggs" not in body and "search_after" not in body


def test_query_is_plain_words_and_highlighted():
    text = 'a "b* ?c~ ^d:(e)[f]{g}\\/'
    body = plan({"query": text, "fields": ["output", "input"]}).body
    must = body["query"]["bool"]["must"]
    assert must == [
        {
            "multi_match": {
                "query": text,
                "fields": ["input", "output", "error"],
                "type": "best_fields",
                "operator": "or",
            }
        }
    ]
    assert "query_string" not in str(body) and "simple_query_string" not in str(body)
    assert body["sort"][0] == {"_score": {"order": "desc"}}
    assert body["highlight"]["encoder"] == "html"
    assert body["highlight"]["pre_tags"] == ["<mark>"]
    assert {"input", "output"} <= set(body["_source"]["includes"])
    assert body["track_scores"] is True


def test_all_filters_sit_in_bool_filter_with_the_tenant():
    conv, doc = uuid.uuid4(), uuid.uuid4()
    body = plan(
        {
            "query": "x",
            "filters": {
                "provider": ["openai", "anthropic"],
                "model": ["m"],
                "status": ["error", "timeout"],
                "prompt_name": ["qa"],
                "prompt_version": 3,
                "conversation_id": str(conv),
                "document_id": str(doc),
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "latency_ms": {"gte": 10, "lt": 20.5},
                "cost_usd": {"gt": 0},
                "total_tokens": {"lte": 100},
                "created_at": {"gte": "2025-01-01T00:00:00Z"},
            },
        }
    ).body
    filters = body["query"]["bool"]["filter"]
    assert filters[0] == {"term": {"tenant_id": str(TENANT)}}
    assert {"terms": {"provider": ["anthropic", "openai"]}} in filters
    assert {"terms": {"status": ["error", "timeout"]}} in filters
    assert {"term": {"prompt_version": 3}} in filters
    assert {"term": {"conversation_id": str(conv)}} in filters
    assert {"term": {"document_ids": str(doc)}} in filters
    assert {"term": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}} in filters
    assert {"range": {"latency_ms": {"gte": 10.0, "lt": 20.5}}} in filters
    assert {"range": {"created_at": {"gte": datetime(2025, 1, 1, tzinfo=UTC).isoformat()}}} in (
        filters
    )
    assert len(filters) == 13
    assert set(body["query"]["bool"]) == {"filter", "must"}


@pytest.mark.parametrize(
    ("sort", "key", "order"),
    [("latency", "latency_ms", "desc"), ("cost", "cost_usd", "asc"), ("time", "created_at", "asc")],
)
def test_sorts_end_with_run_id(sort: str, key: str, order: str):
    body = plan({"sort": sort, "order": order}).body
    assert body["sort"] == [
        {key: {"order": order, "missing": "_last"}},
        {"run_id": {"order": "asc"}},
    ]


def test_cursor_round_trip_and_fingerprint():
    first = plan({"filters": {"model": ["m"]}, "sort": "latency", "size": 2})
    resp = {
        "hits": {
            "total": {"value": 5},
            "hits": [
                {"_source": _source(i), "sort": [float(10 - i), _source(i)["run_id"]]}
                for i in range(3)
            ],
        }
    }
    page = parse_response(resp, first)
    assert len(page.hits) == 2 and page.total == 5 and page.next_cursor
    again = plan(
        {"filters": {"model": ["m"]}, "sort": "latency", "size": 5, "cursor": page.next_cursor}
    )
    assert again.body["search_after"] == [9.0, _source(1)["run_id"]]
    # Another filter, sort or order: the cursor is refused.
    for other in ({"filters": {"model": ["n"]}, "sort": "latency"}, {"sort": "cost"}):
        assert field_of({**other, "cursor": page.next_cursor}) == "cursor"
    # Missing values come back from ES as "-Infinity"; they page on.
    missing = encode_cursor(["-Infinity", "x"], first.fingerprint)
    assert plan({"filters": {"model": ["m"]}, "sort": "latency", "cursor": missing})


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "", "e30", encode_cursor(["x"], "f"), encode_cursor([1, 2], "f")],
)
def test_malformed_cursors(cursor: str):
    assert field_of({"cursor": cursor}) == "cursor"


def test_forged_cursor_values_are_refused():
    fp = plan({}).fingerprint
    assert field_of({"cursor": encode_cursor(["yesterday", "id"], fp)}) == "cursor"
    assert field_of({"cursor": encode_cursor([1, 2], fp)}) == "cursor"
    assert plan({"cursor": encode_cursor([1735689600000, "id"], fp)}).body["search_after"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sort": "relevance"}, "sort"),
        ({"query": "   ", "sort": "relevance"}, "sort"),
        ({"size": 201}, "size"),
        ({"size": -1}, "size"),
        ({"query": "x" * 5000}, "query"),
        ({"filters": {"status": ["ok", "done"]}}, "filters.status[1]"),
        ({"filters": {"model": ["m"] * 101}}, "filters.model"),
        ({"filters": {"latency_ms": {"gte": 5, "lte": 4}}}, "filters.latency_ms.gte"),
        ({"filters": {"latency_ms": {"gt": 5, "lte": 5}}}, "filters.latency_ms.gt"),
        ({"filters": {"latency_ms": {"gt": 5, "gte": 4}}}, "filters.latency_ms.gt"),
        ({"filters": {"total_tokens": {"gte": 9, "lt": 2}}}, "filters.total_tokens.gte"),
        (
            {
                "filters": {
                    "created_at": {"gte": "2025-02-01T00:00:00Z", "lt": "2025-01-01T00:00:00Z"}
                }
            },
            "filters.created_at.gte",
        ),
        ({"filters": {"created_at": {"gte": "2025-02-01T00:00:00"}}}, "filters.created_at.gte"),
    ],
)
def test_refused_with_the_field_named(body: dict[str, Any], field: str):
    assert field_of(body) == field


def test_equal_inclusive_bounds_are_one_value():
    body = plan({"filters": {"total_tokens": {"gte": 5, "lte": 5}}}).body
    assert {"range": {"total_tokens": {"gte": 5, "lte": 5}}} in body["query"]["bool"]["filter"]


def test_schema_refuses_unknown_fields_and_types():
    for bad in (
        {"filters": {"tenant_id": "x"}},
        {"filters": {"latency_ms": {"min": 1}}},
        {"filters": {"latency_ms": {"gte": "fast"}}},
        {"sort": "random"},
        {"aggregations": ["histogram"]},
        {"fields": ["embedding"]},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, RunSearchRequest)


def test_aggregations_are_built_on_request():
    assert "aggs" not in plan({"aggregations": False}).body
    aggs = plan({"aggregations": True, "size": 0}).body["aggs"]
    assert set(aggs) == {"totals", "by_model", "by_day"}
    latency = aggs["by_model"]["aggs"]["latency"]["percentiles"]
    assert latency["hdr"] == {"number_of_significant_value_digits": 3}
    assert aggs["by_day"]["date_histogram"]["calendar_interval"] == "day"
    assert aggs["by_day"]["date_histogram"]["min_doc_count"] == 0
    assert set(plan({"aggregations": ["by_day"]}).body["aggs"]) == {"by_day"}
    assert plan({"size": 0}).body["size"] == 0


def _source(i: int) -> dict[str, Any]:
    return {
        "run_id": str(uuid.UUID(int=i + 1)),
        "provider": "p",
        "model": "m",
        "status": "ok",
        "created_at": "2025-01-01T00:00:00+00:00",
        "document_ids": [],
    }


def test_a_filter_value_longer_than_a_term_may_be_is_refused_with_its_position() -> None:
    assert field_of({"filters": {"model": ["ok", "m" * 513]}}) == "filters.model[1]"
    assert field_of({"filters": {"provider": [""]}}) == "filters.provider[0]"


def test_a_trace_id_filter_is_32_hex_digits():
    with pytest.raises(msgspec.ValidationError, match="trace_id"):
        msgspec.convert({"filters": {"trace_id": "not-a-trace"}}, RunSearchRequest)
