"""From Elasticsearch's answers to one page of search results (pure functions): fuse the
lists, count, keep the window later pages slice, shape each hit."""

from __future__ import annotations

from typing import Any

from myaiserv.search import fusion
from myaiserv.search.plan import Plan
from myaiserv.search.schemas import FacetBucket, HistogramBucket, Hit, SearchResponse, Total
from myaiserv.search.window import Entry, Window, entry_of

Responses = dict[str, dict[str, Any]]  # each body's response, by the body's name


def window(plan: Plan, responses: Responses, *, depth: int) -> tuple[list[fusion.Fused], Window]:
    """A first page's answers as the fused window (in order) and what is kept of it for
    later pages: its order, the total, the facets. ``more``: a bm25 or browsing search
    has hits past the window (``depth`` hits were read)."""
    fused = ranked(plan, responses)
    summary = responses.get("summary")
    counted = total(responses, len(fused) if plan.windowed else 0)
    kept = Window(
        entries=[entry_of(f) for f in fused],
        total=counted,
        facets=facets(summary, plan),
        histogram=histogram(summary, plan),
        more=not plan.windowed and len(fused) >= depth and counted.value > len(fused),
    )
    return fused, kept


def restored(entries: list[Entry], answer: dict[str, Any]) -> list[fusion.Fused]:
    """A later page: the window's entries in their order, each with its hit as read again
    by id (an entry deleted since is left out)."""
    by_key = {fusion.hit_key(h): h for h in _hits(answer)}
    out = []
    for e in entries:
        found = by_key.get(f"{e.kind}/{e.id}")
        if found is not None:
            out.append(fusion.Fused(e.key, found, e.score, dict(e.ranks), dict(e.scores)))
    return out


def response(
    plan: Plan, hits: list[fusion.Fused], kept: Window, cursor: str | None
) -> SearchResponse:
    """Every page reports the first page's total, facets and histogram."""
    return SearchResponse(
        mode=plan.mode if plan.has_text else "bm25",
        hits=[hit(entry, plan) for entry in hits],
        total=kept.total,
        facets=kept.facets,
        histogram=kept.histogram,
        next_cursor=cursor,
    )


def ranked(plan: Plan, responses: Responses) -> list[fusion.Fused]:
    """The hits in their final order: the lists fused (hybrid) or as they came, one hit
    per document when collapsing."""
    if not plan.windowed:
        return fusion.single(_single_name(plan), _hits(responses["page"]))
    key = fusion.document_key if plan.collapse else fusion.hit_key
    lists: dict[str, list[fusion.Hit]] = {
        name: fusion.dedupe(_hits(responses[name]), key)
        for name in ("bm25", "vector")
        if name in responses
    }
    if plan.mode == "hybrid" and plan.fusion == "linear":
        return fusion.linear(lists, normalizer=plan.normalizer, weights=plan.weights, key=key)
    if plan.mode == "hybrid":
        return fusion.rrf(lists, k=plan.rrf_k, weights=plan.weights, key=key)
    ((name, hits),) = lists.items()
    return fusion.single(name, hits)


def _single_name(plan: Plan) -> str:
    return "bm25" if plan.has_text else "browse"


def beyond(plan: Plan, answer: dict[str, Any]) -> list[fusion.Fused]:
    """A page past the window, as Elasticsearch sorted it."""
    return fusion.single(_single_name(plan), _hits(answer))


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
