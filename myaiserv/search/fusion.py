"""Reciprocal rank fusion, in our code (the local Elasticsearch has no RRF, and production
clusters may not be licensed for it).

fused(d) = sum over lists L of weight_L / (k + rank_L(d)), rank from 1; a list that did not
return d adds nothing. Each fused hit keeps its rank and raw score in every list, so a
client can see why it ranked where it did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Hit = dict[str, Any]  # an Elasticsearch hit


@dataclass
class Fused:
    key: str
    hit: Hit
    score: float = 0.0
    ranks: dict[str, int | None] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)


def hit_key(hit: Hit) -> str:
    return f"{hit['_source'].get('kind', hit['_index'])}/{hit['_id']}"


def document_key(hit: Hit) -> str:
    """Collapse key: a chunk stands for its document; other entries for themselves."""
    source = hit["_source"]
    if source.get("type") == "chunk" and source.get("document_id"):
        return f"documents/{source['document_id']}"
    return hit_key(hit)


def dedupe(hits: Sequence[Hit], key: Callable[[Hit], str]) -> list[Hit]:
    """The first (best-ranked) hit per key, in order."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        k = key(hit)
        if k not in seen:
            seen.add(k)
            out.append(hit)
    return out


def rrf(
    lists: Mapping[str, Sequence[Hit]],
    *,
    k: int = 60,
    weights: dict[str, float] | None = None,
    key: Callable[[Hit], str] = hit_key,
) -> list[Fused]:
    """Fuse ranked lists (each already one hit per key). Ties: better best rank first,
    then the key, so the order is total and repeatable (paging depends on it)."""
    weights = weights or {}
    fused: dict[str, Fused] = {}
    for name, hits in lists.items():
        weight = weights.get(name, 1.0)
        for rank, hit in enumerate(hits, start=1):
            k_ = key(hit)
            entry = fused.get(k_)
            if entry is None:
                entry = fused[k_] = Fused(
                    k_, hit, ranks=dict.fromkeys(lists), scores=dict.fromkeys(lists)
                )
            elif "highlight" in hit and "highlight" not in entry.hit:
                entry.hit = {**entry.hit, "highlight": hit["highlight"]}
            entry.ranks[name] = rank
            entry.scores[name] = hit.get("_score")
            entry.score += weight / (k + rank)

    def order(entry: Fused) -> tuple[float, int, str]:
        best = min(r for r in entry.ranks.values() if r is not None)
        return (-entry.score, best, entry.key)

    return sorted(fused.values(), key=order)


def single(name: str, hits: Sequence[Hit], others: Sequence[str] = ()) -> list[Fused]:
    """One list as it came (bm25 or vector mode): the score is the list's own score."""
    out = []
    for rank, hit in enumerate(hits, start=1):
        ranks: dict[str, int | None] = {name: rank, **dict.fromkeys(others)}
        scores: dict[str, float | None] = {name: hit.get("_score"), **dict.fromkeys(others)}
        out.append(Fused(hit_key(hit), hit, float(hit.get("_score") or 0.0), ranks, scores))
    return out
