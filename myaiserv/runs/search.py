"""Search over past runs in Elasticsearch: text, filters, sorts, cursor pages and dashboard
aggregations (``POST /v1/runs/search``).

The request body becomes one ES search body through pure functions (``build_search``,
``parse_response``), unit-tested as dicts; ``RunSearchService`` only sends it, through the
search store (which translates Elasticsearch's failures as for every search). The tenant
filter comes from the caller's API key and sits in ``bool.filter`` with every other filter,
so hits, totals and aggregations can never include another tenant's runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import msgspec

from myaiserv.kit import cursor as codec
from myaiserv.kit.cursor import InvalidCursorError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.runs.schemas import (
    AggName,
    DayStats,
    FloatRange,
    IntRange,
    ModelStats,
    Order,
    RunAggregations,
    RunHit,
    RunSearchFilters,
    RunSearchRequest,
    RunSearchResponse,
    RunStats,
    Sort,
    TimeRange,
)
from myaiserv.runs.service import STATUSES
from myaiserv.search.store import SearchStore

AGG_NAMES: tuple[AggName, ...] = ("totals", "by_model", "by_day")
SORT_FIELDS = {
    "relevance": "_score",
    "time": "created_at",
    "latency": "latency_ms",
    "cost": "cost_usd",
}
TEXT_FIELDS = ("input", "output", "error")
SUMMED_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cost_usd")
HIT_FIELDS = [
    "run_id",
    "provider",
    "model",
    "status",
    "prompt_name",
    "prompt_version",
    "conversation_id",
    "latency_ms",
    "cost_usd",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "created_at",
    "error",
    "document_ids",
    "trace_id",
]
MAX_QUERY_CHARS = 4096
MAX_TERMS = 100  # values per any-of filter
MAX_TERM_CHARS = 512
MAX_MODEL_BUCKETS = 100
# The unified highlighter refuses (400) fields longer than the index's
# ``highlight.max_analyzed_offset`` (1,000,000 by default); inputs may hold 5,000,000
# characters, so only their first million are highlighted.
MAX_HIGHLIGHT_OFFSET = 1_000_000


# -- query building (pure) --------------------------------------------------------------


@dataclass(frozen=True)
class SearchPlan:
    """An ES search body and what reading its answer needs."""

    body: dict[str, Any]
    size: int
    fingerprint: str
    scored: bool


def _terms(name: str, values: list[str]) -> list[dict[str, Any]]:
    if not values:
        return []
    if len(values) > MAX_TERMS:
        raise InvalidInputError(f"filters.{name}", f"at most {MAX_TERMS} values")
    for i, value in enumerate(values):
        # A keyword is one term: Elasticsearch refuses terms over 32 KB.
        if not value or len(value) > MAX_TERM_CHARS:
            raise InvalidInputError(
                f"filters.{name}[{i}]", f"must be a non-empty string (<= {MAX_TERM_CHARS} chars)"
            )
    return [{"terms": {name: sorted(set(values))}}]


def _range(name: str, r: FloatRange | IntRange | TimeRange | None) -> list[dict[str, Any]]:
    """A range filter; inverted or empty bounds are refused rather than matching nothing."""
    if r is None:
        return []
    field = f"filters.{name}"
    bounds: dict[str, Any] = {}
    for key in ("gte", "gt", "lte", "lt"):
        value = getattr(r, key)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"{field}.{key}", "must be a finite number")
        if isinstance(value, datetime):
            if value.utcoffset() is None:
                raise InvalidInputError(f"{field}.{key}", "must have a timezone offset")
            bounds[key] = value.isoformat()
        else:
            bounds[key] = value
    if "gte" in bounds and "gt" in bounds:
        raise InvalidInputError(f"{field}.gt", "give gte or gt, not both")
    if "lte" in bounds and "lt" in bounds:
        raise InvalidInputError(f"{field}.lt", "give lte or lt, not both")
    low_key = "gte" if "gte" in bounds else "gt"
    high_key = "lte" if "lte" in bounds else "lt"
    low, high = getattr(r, low_key), getattr(r, high_key)
    if low is not None and high is not None:
        if low_key == "gt" or high_key == "lt":
            if low >= high:
                raise InvalidInputError(f"{field}.{low_key}", f"must be below {field}.{high_key}")
        elif low > high:
            raise InvalidInputError(f"{field}.{low_key}", f"is above {field}.{high_key}")
    return [{"range": {name: bounds}}] if bounds else []


def build_filters(filters: RunSearchFilters, tenant_id: UUID) -> list[dict[str, Any]]:
    """The ``bool.filter`` clauses; the tenant's always comes first."""
    for i, status in enumerate(filters.status):
        if status not in STATUSES:
            raise InvalidInputError(f"filters.status[{i}]", f"must be one of {', '.join(STATUSES)}")
    clauses: list[dict[str, Any]] = [{"term": {"tenant_id": str(tenant_id)}}]
    clauses += _terms("provider", filters.provider)
    clauses += _terms("model", filters.model)
    clauses += _terms("status", filters.status)
    clauses += _terms("prompt_name", filters.prompt_name)
    if filters.prompt_version is not None:
        clauses.append({"term": {"prompt_version": filters.prompt_version}})
    if filters.conversation_id is not None:
        clauses.append({"term": {"conversation_id": str(filters.conversation_id)}})
    if filters.document_id is not None:
        clauses.append({"term": {"document_ids": str(filters.document_id)}})
    if filters.trace_id is not None:
        clauses.append({"term": {"trace_id": filters.trace_id}})
    clauses += _range("latency_ms", filters.latency_ms)
    clauses += _range("cost_usd", filters.cost_usd)
    clauses += _range("total_tokens", filters.total_tokens)
    clauses += _range("created_at", filters.created_at)
    return clauses


def build_query(text: str | None, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """BM25 over input, output and error. ``multi_match`` analyses the text as plain words,
    so query-syntax characters in it mean nothing (never ``query_string``)."""
    query: dict[str, Any] = {"bool": {"filter": filters}}
    if text is not None:
        query["bool"]["must"] = [
            {
                "multi_match": {
                    "query": text,
                    "fields": list(TEXT_FIELDS),
                    "type": "best_fields",
                    "operator": "or",
                }
            }
        ]
    return query


def build_sort(sort: Sort, order: Order) -> list[dict[str, Any]]:
    """The chosen key, then ``run_id`` ascending: a total order, so ``search_after`` pages
    neither skip nor repeat runs with equal keys. Runs without the key come last either
    way."""
    key = SORT_FIELDS[sort]
    first: dict[str, Any] = {"order": order}
    if key != "_score":
        first["missing"] = "_last"
    return [{key: first}, {"run_id": {"order": "asc"}}]


def _stats_aggs() -> dict[str, Any]:
    """The same metrics for the totals, each model and each day."""
    return {
        "errors": {"filter": {"term": {"status": "error"}}},
        "latency": {
            "percentiles": {
                "field": "latency_ms",
                "percents": [50, 95],
                "keyed": False,
                # 3 significant digits: each value is within 0.1% of a recorded latency.
                "hdr": {"number_of_significant_value_digits": 3},
            }
        },
        **{name: {"sum": {"field": name}} for name in SUMMED_FIELDS},
    }


def build_aggs(names: list[AggName]) -> dict[str, Any]:
    aggs: dict[str, Any] = {}
    if "totals" in names:
        aggs["totals"] = {"filter": {"match_all": {}}, "aggs": _stats_aggs()}
    if "by_model" in names:
        aggs["by_model"] = {
            "terms": {
                "field": "model",
                "size": MAX_MODEL_BUCKETS,
                "order": [{"_count": "desc"}, {"_key": "asc"}],
            },
            "aggs": _stats_aggs(),
        }
    if "by_day" in names:
        # Empty days between the first and the last day with runs are filled in.
        aggs["by_day"] = {
            "date_histogram": {
                "field": "created_at",
                "calendar_interval": "day",
                "min_doc_count": 0,
                "format": "yyyy-MM-dd",
            },
            "aggs": _stats_aggs(),
        }
    return aggs


def _sort_value_ok(key: str, value: Any) -> bool:
    if key == "run_id":
        return isinstance(value, str)
    if key == "created_at":
        return isinstance(value, int) and not isinstance(value, bool)
    # Missing values sort as "Infinity"/"-Infinity", which ES writes as strings.
    if isinstance(value, str):
        return value in ("Infinity", "-Infinity")
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode_cursor(cursor: str, fp: str, sort: list[dict[str, Any]]) -> list[Any]:
    """The ``search_after`` values of a cursor made for this very search (same fingerprint),
    each of the type its sort key has, so ES is never sent a value it would refuse."""
    after = codec.decode(cursor, bound_to=fp).get("a")
    keys = [next(iter(s)) for s in sort]
    if (
        not isinstance(after, list)
        or len(after) != len(keys)
        or not all(_sort_value_ok(k, v) for k, v in zip(keys, after, strict=True))
    ):
        raise InvalidCursorError
    return after


def build_search(request: RunSearchRequest, tenant_id: UUID, *, max_page_size: int) -> SearchPlan:
    """Check what the schema cannot, and build the ES search body. One hit more than
    ``size`` is asked for, to know whether there is a next page."""
    text = request.query.strip() if request.query is not None else None
    text = text or None
    if text is not None and len(text) > MAX_QUERY_CHARS:
        raise InvalidInputError("query", f"at most {MAX_QUERY_CHARS} characters")
    if not 0 <= request.size <= max_page_size:
        raise InvalidInputError("size", f"must be from 0 to {max_page_size}")
    sort_name = request.sort or ("relevance" if text else "time")
    if sort_name == "relevance" and text is None:
        raise InvalidInputError("sort", "relevance needs a query")
    query = build_query(text, build_filters(request.filters, tenant_id))
    sort = build_sort(sort_name, request.order or "desc")
    fp = codec.fingerprint(query, sort)  # what a cursor belongs to: text, filters, tenant, sort

    body: dict[str, Any] = {
        "query": query,
        "sort": sort,
        "size": request.size + 1 if request.size else 0,
        "track_total_hits": True,
        "_source": {"includes": [*HIT_FIELDS, *sorted(set(request.fields))]},
    }
    if text is not None:
        body["track_scores"] = True  # a score per hit whatever the sort
        body["highlight"] = {
            "encoder": "html",  # fragments are HTML-escaped; only the tags are markup
            "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"],
            "max_analyzed_offset": MAX_HIGHLIGHT_OFFSET,
            "fields": {name: {} for name in TEXT_FIELDS},
        }
    if request.cursor is not None:
        body["search_after"] = decode_cursor(request.cursor, fp, sort)
    names = list(AGG_NAMES) if request.aggregations is True else request.aggregations or []
    if names:
        body["aggs"] = build_aggs(names)
    return SearchPlan(body=body, size=request.size, fingerprint=fp, scored=text is not None)


# -- response parsing (pure) ------------------------------------------------------------


def _stats(raw: dict[str, Any]) -> dict[str, Any]:
    count = raw["doc_count"]
    errors = raw["errors"]["doc_count"]
    latency = {p["key"]: p["value"] for p in raw["latency"]["values"]}
    return {
        "count": count,
        "errors": errors,
        "error_rate": errors / count if count else None,
        "prompt_tokens": round(raw["prompt_tokens"]["value"]),
        "completion_tokens": round(raw["completion_tokens"]["value"]),
        "total_tokens": round(raw["total_tokens"]["value"]),
        # Sums of doubles: back to the column's 8 decimal places.
        "cost_usd": round(raw["cost_usd"]["value"], 8),
        "latency_p50_ms": latency.get(50.0),
        "latency_p95_ms": latency.get(95.0),
    }


def parse_aggs(raw: dict[str, Any]) -> RunAggregations:
    out = RunAggregations()
    if "totals" in raw:
        out.totals = RunStats(**_stats(raw["totals"]))
    if "by_model" in raw:
        out.by_model = [ModelStats(model=b["key"], **_stats(b)) for b in raw["by_model"]["buckets"]]
        out.other_models_count = raw["by_model"]["sum_other_doc_count"]
    if "by_day" in raw:
        out.by_day = [
            DayStats(day=date.fromisoformat(b["key_as_string"]), **_stats(b))
            for b in raw["by_day"]["buckets"]
        ]
    return out


def _hit(raw: dict[str, Any], scored: bool) -> RunHit:
    source = dict(raw["_source"])
    source["id"] = source.pop("run_id")
    if scored:
        source["score"] = raw.get("_score")
        source["highlights"] = raw.get("highlight", {})
    return msgspec.convert(source, RunHit)


def parse_response(resp: dict[str, Any], plan: SearchPlan) -> RunSearchResponse:
    raw_hits = resp["hits"]["hits"]
    hits = [_hit(h, plan.scored) for h in raw_hits[: plan.size]]
    next_cursor = None
    if len(raw_hits) > plan.size > 0:
        next_cursor = codec.encode(
            {"a": raw_hits[plan.size - 1]["sort"]}, bound_to=plan.fingerprint
        )
    return RunSearchResponse(
        total=resp["hits"]["total"]["value"],
        hits=hits,
        next_cursor=next_cursor,
        aggregations=parse_aggs(resp["aggregations"]) if "aggregations" in resp else None,
    )


# -- service ----------------------------------------------------------------------------


class RunSearchService:
    def __init__(self, store: SearchStore, tenant_id: UUID, *, max_page_size: int) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.max_page_size = max_page_size

    async def search(self, request: RunSearchRequest) -> RunSearchResponse:
        plan = build_search(request, self.tenant_id, max_page_size=self.max_page_size)
        return parse_response(await self.store.search("runs", plan.body), plan)
