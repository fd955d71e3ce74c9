"""Fusing ranked lists, in our code (the local Elasticsearch has neither the RRF nor the
linear retriever, and production clusters may not be licensed for them).

- Reciprocal rank fusion: fused(d) = sum over lists L of weight_L / (k + rank_L(d)), rank
  from 1; a list that did not return d adds nothing. Ranks only: a list's scores may be on
  any scale.
- Linear: fused(d) = sum over lists L of weight_L * norm_L(score_L(d)), each list's scores
  normalised over the hits it returned (min-max to [0, 1], as Elasticsearch's ``linear``
  retriever does, or z-scores). A list that did not return d counts it at the lowest
  normalised score it returned: d ranked below everything the list read. Score margins
  count: a clear winner in one list can outrank a hit both lists placed middling.

Each fused hit keeps its rank and raw score in every list, so a client can see why it
ranked where it did.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Hit = dict[str, Any]  # an Elasticsearch hit
Normalizer = Literal["minmax", "zscore"]
EPSILON = 1e-9


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
    """Fuse ranked lists (each already one hit per key) by rank. Ties: better best rank
    first, then the key, so the order is total and repeatable (paging depends on it)."""
    weights = weights or {}
    fused = _gathered(lists, key)
    for entry in fused.values():
        entry.score = sum(
            weights.get(name, 1.0) / (k + rank)
            for name, rank in entry.ranks.items()
            if rank is not None
        )
    return _ordered(fused)


def normalised(scores: Sequence[float], normalizer: Normalizer) -> list[float]:
    """One list's scores on a common scale: min-max to [0, 1] (all equal: 1, each is the
    list's best), or z-scores (all equal: 0)."""
    if not scores:
        return []
    if normalizer == "minmax":
        low, high = min(scores), max(scores)
        if high - low < EPSILON:
            return [1.0] * len(scores)
        return [(s - low) / (high - low) for s in scores]
    mean, spread = statistics.fmean(scores), statistics.pstdev(scores)
    if spread < EPSILON:
        return [0.0] * len(scores)
    return [(s - mean) / spread for s in scores]


def linear(
    lists: Mapping[str, Sequence[Hit]],
    *,
    normalizer: Normalizer = "minmax",
    weights: dict[str, float] | None = None,
    key: Callable[[Hit], str] = hit_key,
) -> list[Fused]:
    """Fuse ranked lists (each already one hit per key) by a weighted sum of normalised
    scores; ties as ``rrf``."""
    weights = weights or {}
    fused = _gathered(lists, key)
    for name, hits in lists.items():
        weight = weights.get(name, 1.0)
        norms = normalised([float(h.get("_score") or 0.0) for h in hits], normalizer)
        by_key = dict(zip((key(h) for h in hits), norms, strict=True))
        floor = min(norms, default=0.0)
        for entry in fused.values():
            entry.score += weight * by_key.get(entry.key, floor)
    return _ordered(fused)


def _gathered(lists: Mapping[str, Sequence[Hit]], key: Callable[[Hit], str]) -> dict[str, Fused]:
    """Every hit of every list once, with its rank and raw score in each (None where a
    list did not return it); score 0."""
    fused: dict[str, Fused] = {}
    for name, hits in lists.items():
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
    return fused


def _ordered(fused: dict[str, Fused]) -> list[Fused]:
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
