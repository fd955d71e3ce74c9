"""From a validated search request to Elasticsearch request bodies (pure functions).

Every body carries the tenant filter and the request's filters inside its query (for kNN,
inside the kNN ``filter``, so the nearest neighbours are searched among the tenant's
entries only, never filtered after retrieval). User text only ever reaches Elasticsearch
through ``match``/``multi_match``, which do not parse query syntax.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from myaiserv.kit.validation import InvalidInputError
from myaiserv.search.analysis import stems
from myaiserv.search.indices import SPECS
from myaiserv.search.schemas import DateRange, Filters

KIND_NAMES = ("documents", "prompts", "conversations", "runs")

# Natural text fields per kind: BM25 without app-side stemming, and highlights.
TEXT_FIELDS = {
    "documents": ["title^2", "heading^1.5", "text"],
    "prompts": ["name^2", "description", "template"],
    "conversations": ["title", "content"],
    "runs": ["input", "output", "error"],
}
HIGHLIGHT_FIELDS = {
    "documents": ["text", "title"],
    "prompts": ["template", "description"],
    "conversations": ["content", "title"],
    "runs": ["input", "output"],
}
# Returned with every hit; anything else (full texts, vectors) only through `fields`.
DEFAULT_FIELDS = {
    "documents": [
        "document_id", "chunk_id", "position", "title", "heading", "source", "content_type",
        "tags", "metadata", "created_at", "updated_at",
    ],
    "prompts": [
        "prompt_id", "name", "description", "tags", "labels", "indexed_version", "variables",
        "created_at", "updated_at",
    ],
    "conversations": [
        "conversation_id", "message_id", "title", "role", "created_at", "updated_at",
    ],
    "runs": [
        "run_id", "provider", "model", "status", "prompt_name", "prompt_version",
        "conversation_id", "latency_ms", "cost_usd", "total_tokens", "created_at",
    ],
}  # fmt: skip
HIDDEN_FIELDS = {"tenant_id", "stems", "meta", "kind", "type", "version"}

# Filters and facets: the kinds whose entries have the field.
FILTER_KINDS = {
    "type": set(KIND_NAMES),
    "tags": {"documents", "prompts"},
    "content_type": {"documents"},
    "source": {"documents"},
    "document_id": {"documents", "runs"},  # runs: lineage (documents they retrieved)
    "conversation_id": {"conversations", "runs"},
    "role": {"conversations"},
    "provider": {"runs"},
    "model": {"runs"},
    "status": {"runs"},
    "created_at": set(KIND_NAMES),
    "updated_at": set(KIND_NAMES),
    "metadata": {"documents", "conversations", "runs"},
}
FIELD_OF = {"document_id": "document_ids"}  # runs store lineage in document_ids too
FACETS = {
    "kind": "kind",
    "type": "type",
    "tags": "tags",
    "content_type": "content_type",
    "source": "source",
    "role": "role",
    "provider": "provider",
    "model": "model",
    "status": "status",
    "prompt": "name.raw",
}
FACET_KINDS = {**FILTER_KINDS, "kind": set(KIND_NAMES), "prompt": {"prompts"}}
MAX_FACET_BUCKETS = 50


@dataclass
class Plan:
    """A validated request, ready to become Elasticsearch bodies."""

    tenant_id: str
    query: str
    kinds: list[str]
    mode: str
    size: int
    filters: list[dict[str, Any]]
    facets: list[str]
    histogram: tuple[str, str] | None
    fields: list[str]
    highlight: bool
    collapse: bool
    window: int
    rrf_k: int
    weights: dict[str, float]
    num_candidates: int
    stemmer: str
    meta_fields: dict[str, str] = field(default_factory=dict)


# -- validation -----------------------------------------------------------------------


def kinds_of(requested: list[str] | None) -> list[str]:
    if requested is None:
        return list(KIND_NAMES)
    if not requested:
        raise InvalidInputError("kinds", "give at least one kind, or leave it out for all")
    for i, kind in enumerate(requested):
        if kind not in KIND_NAMES:
            raise InvalidInputError(
                f"kinds[{i}]", f"unknown kind {kind!r}; choose from {', '.join(KIND_NAMES)}"
            )
    return list(dict.fromkeys(requested))


def _applies(name: str, where: str, kinds: list[str], table: dict[str, set[str]]) -> None:
    if not table[name] & set(kinds):
        raise InvalidInputError(
            where,
            f"applies to {', '.join(sorted(table[name]))} only, "
            f"and this search covers {', '.join(kinds)}",
        )


def _date_range(value: DateRange, where: str) -> dict[str, str]:
    bounds = {k: getattr(value, k) for k in ("gte", "gt", "lte", "lt")}
    bounds = {k: v for k, v in bounds.items() if v is not None}
    if not bounds:
        raise InvalidInputError(where, "give at least one of gte, gt, lte, lt")
    low = bounds.get("gte") or bounds.get("gt")
    high = bounds.get("lte") or bounds.get("lt")
    if low and high and _aware(low) > _aware(high):
        raise InvalidInputError(where, "the lower bound is after the upper bound")
    return {k: _aware(v).isoformat() for k, v in bounds.items()}


def _aware(value: Any) -> Any:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _strings(values: list[Any], where: str) -> list[str]:
    if not values:
        raise InvalidInputError(where, "give at least one value")
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value or len(value) > 512:
            raise InvalidInputError(f"{where}[{i}]", "must be a non-empty string (<= 512 chars)")
    return values


def _metadata_clause(name: str, kind: str, value: Any, where: str) -> dict[str, Any]:
    from myaiserv.search.metadata import coerce

    path = f"meta.{name}"

    def one(item: Any, at: str) -> Any:
        wrong = (
            (kind in ("long", "double") and isinstance(item, (str, bool)))
            or (kind == "boolean" and not isinstance(item, bool))
            or (kind == "date" and not isinstance(item, str))
        )
        typed = None if wrong else coerce(item, kind)
        if typed is None:
            raise InvalidInputError(at, f"must be a {kind} value")
        return typed

    if isinstance(value, dict):
        if kind in ("keyword", "boolean"):
            raise InvalidInputError(where, f"{name} is a {kind} field: ranges do not apply")
        unknown = set(value) - {"gte", "gt", "lte", "lt"}
        if unknown or not value:
            raise InvalidInputError(where, "a range takes gte, gt, lte and lt only")
        bounds = {k: one(v, f"{where}.{k}") for k, v in value.items()}
        low = bounds.get("gte", bounds.get("gt"))
        high = bounds.get("lte", bounds.get("lt"))
        if low is not None and high is not None and low > high:
            raise InvalidInputError(where, "the lower bound is above the upper bound")
        return {"range": {path: bounds}}
    if isinstance(value, list):
        if not value:
            raise InvalidInputError(where, "give at least one value")
        return {"terms": {path: [one(v, f"{where}[{i}]") for i, v in enumerate(value)]}}
    return {"term": {path: one(value, where)}}


def filter_clauses(
    tenant_id: str, filters: Filters | None, kinds: list[str], meta_fields: dict[str, str]
) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = [{"term": {"tenant_id": tenant_id}}]
    if filters is None:
        return clauses
    for name in FILTER_KINDS:
        value = getattr(filters, name)
        if value is None:
            continue
        where = f"filters.{name}"
        _applies(name, where, kinds, FILTER_KINDS)
        if isinstance(value, DateRange):
            clauses.append({"range": {name: _date_range(value, where)}})
        elif name == "metadata":
            if not isinstance(value, dict) or not value:
                raise InvalidInputError(where, "give at least one metadata field")
            for key, item in value.items():
                if key not in meta_fields:
                    allowed = ", ".join(sorted(meta_fields)) or "none are configured"
                    raise InvalidInputError(
                        f"{where}.{key}", f"not a filterable metadata field ({allowed})"
                    )
                clauses.append(_metadata_clause(key, meta_fields[key], item, f"{where}.{key}"))
        elif name == "tags":
            clauses += [{"term": {"tags": t}} for t in _strings(value, where)]
        elif name in FIELD_OF:
            # Chunks carry document_id, runs the documents they used (document_ids).
            values = _strings(value, where)
            fields = (name, FIELD_OF[name])
            clauses.append(
                {
                    "bool": {
                        "should": [{"terms": {f: values}} for f in fields],
                        "minimum_should_match": 1,
                    }
                }
            )
        else:
            clauses.append({"terms": {name: _strings(value, where)}})
    return clauses


def facet_fields(names: list[str], kinds: list[str], meta_fields: dict[str, str]) -> list[str]:
    for i, name in enumerate(names):
        where = f"facets[{i}]"
        if name.startswith("metadata."):
            key = name.removeprefix("metadata.")
            if meta_fields.get(key) not in ("keyword", "boolean", "long"):
                raise InvalidInputError(
                    where, f"{key!r} is not a keyword, boolean or long metadata field"
                )
            _applies("metadata", where, kinds, FILTER_KINDS)
        elif name in FACETS:
            _applies(name, where, kinds, FACET_KINDS)
        else:
            allowed = ", ".join([*FACETS, "metadata.<field>"])
            raise InvalidInputError(where, f"unknown facet {name!r}; choose from {allowed}")
    return list(dict.fromkeys(names))


def returned_fields(asked: list[str], kinds: list[str]) -> list[str]:
    known: set[str] = set()
    for kind in kinds:
        known |= _property_names(kind)
    for i, name in enumerate(asked):
        if name not in known or name in HIDDEN_FIELDS:
            raise InvalidInputError(
                f"fields[{i}]", f"unknown field {name!r} for {', '.join(kinds)}"
            )
    return list(dict.fromkeys(asked))


@functools.cache
def _property_names(kind: str) -> frozenset[str]:
    from myaiserv.embeddings.model import ModelInfo
    from myaiserv.search.indices import IndexOptions

    props = SPECS[kind].properties(ModelInfo("x", 1, 1), IndexOptions())
    return frozenset(props)


# -- bodies ---------------------------------------------------------------------------


def text_query(plan: Plan) -> dict[str, Any]:
    """The BM25 query: the app-side stems when stemming happens in our code (and the query
    has words left after stop words), the kinds' natural text fields otherwise."""
    stemmed = stems(plan.query, plan.stemmer) if plan.stemmer != "none" else ""
    if stemmed:
        return {"match": {"stems": {"query": stemmed}}}
    fields = [f for kind in plan.kinds for f in TEXT_FIELDS[kind]]
    return {"multi_match": {"query": plan.query, "fields": fields, "type": "best_fields"}}


def _source(plan: Plan) -> dict[str, Any]:
    fields = {f for kind in plan.kinds for f in DEFAULT_FIELDS[kind]} | set(plan.fields)
    return {"includes": sorted(fields | {"kind", "type", "document_id"})}


def highlight(plan: Plan) -> dict[str, Any] | None:
    if not plan.highlight or not plan.query.strip():
        return None
    fields = list(dict.fromkeys(f for kind in plan.kinds for f in HIGHLIGHT_FIELDS[kind]))
    return {
        "encoder": "html",  # the snippet's own text is HTML-escaped; only <mark> is markup
        "pre_tags": ["<mark>"],
        "post_tags": ["</mark>"],
        "fragment_size": 160,
        "number_of_fragments": 2,
        "require_field_match": False,
        # Fields past this length would fail the request; texts may be millions of chars.
        "max_analyzed_offset": 1_000_000,
        "highlight_query": {
            "multi_match": {"query": plan.query, "fields": fields, "type": "best_fields"}
        },
        "fields": {f: {} for f in fields},
    }


def bm25_body(plan: Plan, size: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": {"bool": {"must": [text_query(plan)], "filter": plan.filters}},
        "size": size,
        "_source": _source(plan),
        "track_total_hits": True,
    }
    if hl := highlight(plan):
        body["highlight"] = hl
    return body


def candidates(num_candidates: int, k: int) -> int:
    """kNN candidates per shard for ``k`` hits: at least k, at most ES's 10,000."""
    return min(10_000, max(num_candidates, k))


def knn_clause(plan: Plan, vector: list[float], k: int) -> dict[str, Any]:
    return {
        "field": "embedding",
        "query_vector": vector,
        "k": k,
        "num_candidates": candidates(plan.num_candidates, k),
        "filter": {"bool": {"filter": plan.filters}},
    }


def knn_body(plan: Plan, vector: list[float], k: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "knn": knn_clause(plan, vector, k),
        "size": k,
        "_source": _source(plan),
    }
    if hl := highlight(plan):
        body["highlight"] = hl
    return body


def browse_body(plan: Plan, size: int) -> dict[str, Any]:
    """No query text: the filtered entries, newest first."""
    return {
        "query": {"bool": {"filter": plan.filters}},
        "size": size,
        "_source": _source(plan),
        "track_total_hits": True,
    }


def aggregations(plan: Plan) -> dict[str, Any]:
    """Facet counts are of entities: a document counts once however many of its chunks
    matched (chunks' distinct document ids; exact below 40,000 per bucket), every other
    entry counts as itself."""

    def counted(terms: dict[str, Any]) -> dict[str, Any]:
        return {
            **terms,
            "aggs": {
                "chunks": {
                    "filter": {"term": {"type": "chunk"}},
                    "aggs": {
                        "documents": {
                            "cardinality": {"field": "document_id", "precision_threshold": 40000}
                        }
                    },
                }
            },
        }

    aggs: dict[str, Any] = {}
    for name in plan.facets:
        field = (
            f"meta.{name.removeprefix('metadata.')}"
            if name.startswith("metadata.")
            else FACETS[name]
        )
        aggs[f"facet:{name}"] = counted({"terms": {"field": field, "size": MAX_FACET_BUCKETS}})
    if plan.histogram:
        date_field, interval = plan.histogram
        aggs["histogram"] = counted(
            {"date_histogram": {"field": date_field, "calendar_interval": interval}}
        )
    return aggs


def summary_body(plan: Plan, vector: list[float] | None, k: int) -> dict[str, Any]:
    """Size 0: the total and the aggregations over every hit of the search. With both a
    query and a kNN clause, Elasticsearch aggregates over their union, which is what the
    hybrid list is drawn from."""
    body: dict[str, Any] = {"size": 0, "track_total_hits": True, "aggs": aggregations(plan)}
    if plan.query.strip() and plan.mode != "vector":
        body["query"] = {"bool": {"must": [text_query(plan)], "filter": plan.filters}}
    elif not plan.query.strip():
        body["query"] = {"bool": {"filter": plan.filters}}
    if vector is not None and plan.query.strip() and plan.mode != "bm25":
        body["knn"] = knn_clause(plan, vector, k)
    return body


def entity_count(bucket: dict[str, Any]) -> int:
    chunks = bucket["chunks"]
    return int(bucket["doc_count"] - chunks["doc_count"] + chunks["documents"]["value"])
