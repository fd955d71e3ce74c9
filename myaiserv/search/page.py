"""From Elasticsearch's answers to one page of search results (pure functions): fuse the
lists, slice the page, count, shape each hit, and say where the next page starts."""

from __future__ import annotations

from typing import Any

from myaiserv.search import fusion
from myaiserv.search.cursor import Cursor
from myaiserv.search.plan import Plan
from myaiserv.search.schemas import FacetBucket, HistogramBucket, Hit, SearchResponse, Total

Responses = dict[str, dict[str, Any]]  # each body's response, by the body's name


def shape(
    plan: Plan,
    responses: Responses,
    *,
    offset: int,
    depth: int,
    pit: str | None,
    fingerprint: str,
) -> SearchResponse:
    """The page starting at ``offset`` of a windowed search's fused list (``depth``: the
    window each list was read to), or the page Elasticsearch sorted. There is a next page
    only within a point in time (``pit``)."""
    fused = ranked(plan, responses)
    page = fused[offset : offset + plan.size] if plan.windowed else fused
    cursor = next_cursor(plan, responses, len(fused), offset=offset, depth=depth, pit=pit)
    summary = responses.get("summary")
    return SearchResponse(
        mode=plan.mode if plan.has_text else "bm25",
        hits=[hit(entry, plan) for entry in page],
        total=total(responses, len(fused) if plan.windowed else 0),
        facets=facets(summary, plan),
        histogram=histogram(summary, plan),
        next_cursor=cursor.encode(fingerprint) if cursor else None,
    )


def ranked(plan: Plan, responses: Responses) -> list[fusion.Fused]:
    """The hits in their final order: the lists fused (hybrid) or as they came, one hit
    per document when collapsing."""
    if not plan.windowed:
        return fusion.single("bm25" if plan.has_text else "browse", _hits(responses["page"]))
    key = fusion.document_key if plan.collapse else fusion.hit_key
    lists: dict[str, list[fusion.Hit]] = {
        name: fusion.dedupe(_hits(responses[name]), key)
        for name in ("bm25", "vector")
        if name in responses
    }
    if plan.mode == "hybrid":
        return fusion.rrf(lists, k=plan.rrf_k, weights=plan.weights, key=key)
    ((name, hits),) = lists.items()
    return fusion.single(name, hits)


def next_cursor(
    plan: Plan, responses: Responses, fused: int, *, offset: int, depth: int, pit: str | None
) -> Cursor | None:
    """Where the next page starts, if there is one: the offset into the same window, or
    the sort values of the page's last hit."""
    if pit is None:
        return None
    if plan.windowed:
        end = offset + plan.size
        return Cursor(pit, offset=end, window=depth) if end < fused else None
    hits = _hits(responses["page"])
    return Cursor(pit, after=hits[-1]["sort"]) if len(hits) == plan.size else None


def total(responses: Responses, fused: int) -> Total:
    """Exact with facets (the summary counts the union of both lists) and in bm25
    paging; otherwise a lower bound: the fused window, or the text matches."""
    if "summary" in responses:
        return Total(value=responses["summary"]["hits"]["total"]["value"], relation="eq")
    if "page" in responses:
        found = responses["page"]["hits"]["total"]
        return Total(value=found["value"], relation=found["relation"])
    bm25 = responses["bm25"]["hits"]["total"]["value"] if "bm25" in responses else 0
    return Total(value=max(bm25, fused), relation="gte")


def hit(entry: fusion.Fused, plan: Plan) -> Hit:
    """A hit's fields are its ``_source`` less what the API reports apart (kind, type);
    a chunk's ``document_id`` stays, other kinds' only when asked for."""
    source = dict(entry.hit["_source"])
    kind = source.pop("kind", "")
    type_ = source.pop("type", "")
    if kind != "documents" and "document_id" not in plan.fields:
        source.pop("document_id", None)
    return Hit(
        id=entry.hit["_id"],
        kind=kind,
        type=type_,
        score=round(entry.score, 6),
        ranks=entry.ranks,
        scores=entry.scores,
        fields=source,
        highlights=entry.hit.get("highlight", {}),
    )


def facets(summary: dict[str, Any] | None, plan: Plan) -> dict[str, list[FacetBucket]]:
    """Each facet's buckets, most entities first (ties by value)."""
    if not summary or not plan.facets:
        return {}
    aggs = summary.get("aggregations", {})
    out: dict[str, list[FacetBucket]] = {}
    for name in plan.facets:
        buckets = aggs.get(f"facet:{name}", {}).get("buckets", [])
        counted = [
            FacetBucket(value=b.get("key_as_string", b["key"]), count=entity_count(b))
            for b in buckets
        ]
        out[name] = sorted(counted, key=lambda b: (-b.count, str(b.value)))
    return out


def histogram(summary: dict[str, Any] | None, plan: Plan) -> list[HistogramBucket] | None:
    if not summary or not plan.histogram:
        return None
    buckets = summary.get("aggregations", {}).get("histogram", {}).get("buckets", [])
    return [HistogramBucket(date=b["key_as_string"], count=entity_count(b)) for b in buckets]


def entity_count(bucket: dict[str, Any]) -> int:
    """A bucket's entities: its entries, with a document's chunks counted once."""
    chunks = bucket["chunks"]
    return int(bucket["doc_count"] - chunks["doc_count"] + chunks["documents"]["value"])


def _hits(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return list(answer["hits"]["hits"])
