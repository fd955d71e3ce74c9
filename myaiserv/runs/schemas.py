"""Runs over the wire. Unknown fields are rejected, so a typo is a 400, not a no-op.
Ranges, lengths, references and time order are checked by the service, which the RAG code
calls directly too, so they fail the same way (422, naming the field) from both."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from myaiserv.kit.index_state import IndexState

Status = Literal["ok", "error", "timeout", "cancelled"]
Sort = Literal["relevance", "time", "latency", "cost"]
Order = Literal["asc", "desc"]
AggName = Literal["totals", "by_model", "by_day"]
TextField = Literal["input", "output"]


class RunCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    provider: str
    model: str
    input: str
    status: Status
    output: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None  # the sum of both parts when omitted
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    cost_usd: float | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    prompt_version_id: UUID | None = None
    conversation_id: UUID | None = None
    retrieved_chunk_ids: list[str] = msgspec.field(default_factory=list)
    cited_chunk_ids: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    status: Status | msgspec.UnsetType = msgspec.UNSET
    output: str | msgspec.UnsetType | None = msgspec.UNSET
    error: str | msgspec.UnsetType | None = msgspec.UNSET
    prompt_tokens: int | msgspec.UnsetType | None = msgspec.UNSET
    completion_tokens: int | msgspec.UnsetType | None = msgspec.UNSET
    total_tokens: int | msgspec.UnsetType | None = msgspec.UNSET
    latency_ms: float | msgspec.UnsetType | None = msgspec.UNSET
    time_to_first_token_ms: float | msgspec.UnsetType | None = msgspec.UNSET
    cost_usd: float | msgspec.UnsetType | None = msgspec.UNSET
    finished_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class RunOut(IndexState, kw_only=True):
    id: UUID
    provider: str
    model: str
    input: str
    output: str | None
    status: str
    error: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    latency_ms: float | None
    time_to_first_token_ms: float | None
    cost_usd: float | None
    prompt_name: str | None
    prompt_version: int | None
    prompt_version_id: UUID | None
    conversation_id: UUID | None
    retrieved_chunk_ids: list[str]
    cited_chunk_ids: list[str]
    metadata: dict[str, Any]
    started_at: datetime | None
    finished_at: datetime | None
    trace_id: str | None  # the trace it was recorded in (tracing on), 32 hex digits
    version: int
    created_at: datetime
    updated_at: datetime


class RunPage(msgspec.Struct, kw_only=True):
    items: list[RunOut]
    next_cursor: str | None


# -- search: POST /v1/runs/search -------------------------------------------------------


class FloatRange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None


class IntRange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    gte: int | None = None
    gt: int | None = None
    lte: int | None = None
    lt: int | None = None


class TimeRange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    gte: datetime | None = None
    gt: datetime | None = None
    lte: datetime | None = None
    lt: datetime | None = None


class RunSearchFilters(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """All given filters must hold. A list matches any of its values; an empty list is no
    filter."""

    provider: list[str] = msgspec.field(default_factory=list)
    model: list[str] = msgspec.field(default_factory=list)
    status: list[str] = msgspec.field(default_factory=list)
    prompt_name: list[str] = msgspec.field(default_factory=list)
    prompt_version: int | None = None
    conversation_id: UUID | None = None
    document_id: UUID | None = None  # lineage: runs that retrieved or cited its chunks
    trace_id: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")] | None = None
    latency_ms: FloatRange | None = None
    cost_usd: FloatRange | None = None
    total_tokens: IntRange | None = None
    created_at: TimeRange | None = None


class RunSearchRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    query: str | None = None
    filters: RunSearchFilters = msgspec.field(default_factory=RunSearchFilters)
    sort: Sort | None = None  # relevance with a query, time without
    order: Order | None = None  # desc by default
    size: int = 20
    cursor: str | None = None
    fields: list[TextField] = msgspec.field(default_factory=list)
    aggregations: bool | list[AggName] = False


class RunHit(msgspec.Struct, kw_only=True):
    id: UUID
    score: float | None = None
    provider: str
    model: str
    status: str
    prompt_name: str | None = None
    prompt_version: int | None = None
    conversation_id: UUID | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    created_at: datetime
    error: str | None = None
    document_ids: list[str] = msgspec.field(default_factory=list)  # chunk id prefixes
    trace_id: str | None = None
    highlights: dict[str, list[str]] | None = None
    input: str | msgspec.UnsetType = msgspec.UNSET
    output: str | msgspec.UnsetType | None = msgspec.UNSET


class RunStats(msgspec.Struct, kw_only=True):
    """``error_rate`` counts status "error" only (not timeouts or cancellations); it is
    null for no runs. Latency percentiles come from HDR histograms: within 0.1% of the
    latency at rank round(p·n) (halves up) among the n runs that have one; PostgreSQL's
    ``percentile_disc`` takes rank ceil(p·n), one higher for some small n. Null when no
    run has a latency."""

    count: int
    errors: int
    error_rate: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class ModelStats(RunStats, kw_only=True):
    model: str


class DayStats(RunStats, kw_only=True):
    day: date  # UTC


class RunAggregations(msgspec.Struct, kw_only=True):
    totals: RunStats | None = None
    by_model: list[ModelStats] | None = None
    other_models_count: int | None = None  # runs of models past the first 100
    by_day: list[DayStats] | None = None


class RunSearchResponse(msgspec.Struct, kw_only=True):
    total: int
    hits: list[RunHit]
    next_cursor: str | None
    aggregations: RunAggregations | None = None
