"""POST /v1/search over the wire. Unknown fields are rejected (a typo is a 4xx, not a
silently ignored filter); semantic checks (kinds, filterable fields, caps) are the
service's, so they name the field the same way from every caller."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

Mode = Literal["bm25", "vector", "hybrid"]
Fusion = Literal["rrf", "linear"]
Normalizer = Literal["minmax", "zscore"]


class DateRange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    gte: datetime | None = None
    gt: datetime | None = None
    lte: datetime | None = None
    lt: datetime | None = None


class Filters(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Every filter given must hold (AND). Lists inside one filter are any-of, except
    ``tags``, where every tag listed must be present."""

    type: list[str] | None = None  # chunk, prompt, conversation, message, run
    tags: list[str] | None = None
    content_type: list[str] | None = None
    source: list[str] | None = None
    document_id: list[str] | None = None
    conversation_id: list[str] | None = None
    role: list[str] | None = None
    provider: list[str] | None = None
    model: list[str] | None = None
    status: list[str] | None = None
    created_at: DateRange | None = None
    updated_at: DateRange | None = None
    # key -> value | [values] | {"gte": ..., "lte": ...}; keys from search.metadata_fields
    metadata: dict[str, Any] | None = None


class Histogram(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    field: Literal["created_at", "updated_at"] = "created_at"
    interval: Literal["hour", "day", "week", "month", "year"] = "day"


class Weights(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    bm25: float = 1.0
    vector: float = 1.0


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    query: str = ""
    kinds: list[str] | None = None  # documents, prompts, conversations, runs (default all)
    mode: Mode = "hybrid"
    filters: Filters | None = None
    facets: list[str] = msgspec.field(default_factory=list)
    histogram: Histogram | None = None
    size: int | None = None
    cursor: str | None = None
    fields: list[str] = msgspec.field(default_factory=list)
    highlight: bool = True
    collapse: bool = False  # one hit per document: its best chunk
    window: int | None = None  # vector/hybrid: hits per list fused (and reachable by paging)
    fusion: Fusion | None = None  # hybrid: how the lists combine (default: settings)
    normalizer: Normalizer | None = None  # linear fusion: how each list's scores scale
    rrf_k: int | None = None
    weights: Weights | None = None
    num_candidates: int | None = None


class FacetBucket(msgspec.Struct):
    value: Any
    count: int


class HistogramBucket(msgspec.Struct):
    date: str
    count: int


class Total(msgspec.Struct):
    value: int
    relation: Literal["eq", "gte"]


class Hit(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    type: str
    score: float
    ranks: dict[str, int | None]
    scores: dict[str, float | None]
    fields: dict[str, Any]
    highlights: dict[str, list[str]] = msgspec.field(default_factory=dict)


class SearchResponse(msgspec.Struct, kw_only=True):
    mode: Mode
    hits: list[Hit]
    total: Total
    facets: dict[str, list[FacetBucket]] = msgspec.field(default_factory=dict)
    histogram: list[HistogramBucket] | None = None
    next_cursor: str | None = None
