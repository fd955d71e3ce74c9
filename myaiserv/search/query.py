"""From a validated ``Plan`` to Elasticsearch request bodies (pure functions, dicts out).

Every body carries the tenant filter and the request's filters inside its query (for kNN,
inside the kNN ``filter``, so the nearest neighbours are searched among the tenant's
entries only, never filtered after retrieval). User text only ever reaches Elasticsearch
through ``match``/``multi_match``, which do not parse query syntax.
"""

from __future__ import annotations

from typing import Any

from myaiserv.search.analysis import stems
from myaiserv.search.fields import (
    DEFAULT_FIELDS,
    FACETS,
    HIGHLIGHT_FIELDS,
    MAX_FACET_BUCKETS,
    TEXT_FIELDS,
)
from myaiserv.search.plan import Plan


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


def page_bodies(plan: Plan, vector: list[float] | None, *, depth: int) -> dict[str, dict[str, Any]]:
    """The bodies of a search's first page, by name, for one ``_msearch``: its window.

    Windowed searches (vector, hybrid, collapsed bm25) read ``depth`` hits from each list
    and fuse them; other searches read ``depth`` hits sorted by score (or newest first,
    without text). The window's order is what later pages slice (``search.window``), so
    paging is exact. ``summary``: the total and aggregations, when facets or a histogram
    are asked for."""
    bodies: dict[str, dict[str, Any]] = {}
    if plan.windowed:
        if plan.mode in ("bm25", "hybrid"):
            bodies["bm25"] = bm25_body(plan, depth)
        if plan.mode in ("vector", "hybrid"):
            bodies["vector"] = knn_body(plan, vector or [], depth)
    else:
        page = bm25_body(plan, depth) if plan.has_text else browse_body(plan, depth)
        page["sort"] = [_first_sort(plan)]
        bodies["page"] = page
    if plan.facets or plan.histogram:
        bodies["summary"] = summary_body(plan, vector, depth)
    return bodies


def _first_sort(plan: Plan) -> dict[str, str]:
    return {"_score": "desc"} if plan.has_text else {"updated_at": "desc"}


def hits_body(plan: Plan, ids: list[str]) -> dict[str, Any]:
    """A later page's hits, read again by id (their order is the stored window's); the
    highlights are made as on the first page."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [*plan.filters, {"ids": {"values": ids}}]}},
        "size": len(ids),
        "_source": _source(plan),
    }
    if hl := highlight(plan):
        body["highlight"] = hl
    return body


def beyond_body(plan: Plan, window: list[str], after: list[Any] | None) -> dict[str, Any]:
    """A bm25 (or browsing) page past the window, within a point in time: the search's
    hits less the window's, sorted as the window was, ``_shard_doc`` (the cheapest total
    order) breaking ties, continuing ``after`` the last hit."""
    body = bm25_body(plan, plan.size) if plan.has_text else browse_body(plan, plan.size)
    body["query"]["bool"]["must_not"] = [{"ids": {"values": window}}]
    body["track_total_hits"] = False  # the total is the first page's
    body["sort"] = [_first_sort(plan), {"_shard_doc": "asc"}]
    if after:
        body["search_after"] = after
    return body


CHUNK_FIELDS = ["chunk_id", "document_id", "position", "heading", "text"]


def chunks_body(
    tenant_id: str, document_id: str, *, after: int | None, size: int
) -> dict[str, Any]:
    """A document's chunks in the order of its text (by position), ``size`` of them,
    continuing ``after`` a position; only the tenant's."""
    body: dict[str, Any] = {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"tenant_id": tenant_id}},
                    {"term": {"type": "chunk"}},
                    {"term": {"document_id": document_id}},
                ]
            }
        },
        "size": size,
        "sort": [{"position": "asc"}],
        "_source": {"includes": CHUNK_FIELDS},
        "track_total_hits": True,
    }
    if after is not None:
        body["search_after"] = [after]
    return body
