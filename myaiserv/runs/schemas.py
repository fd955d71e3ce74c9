"""Runs over the wire. Unknown fields are rejected, so a typo is a 400, not a no-op.
Ranges, lengths, references and time order are checked by the service, which the RAG code
calls directly too, so they fail the same way (422, naming the field) from both."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

Status = Literal["ok", "error", "timeout", "cancelled"]


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


class RunOut(msgspec.Struct, kw_only=True):
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
    version: int
    created_at: datetime
    updated_at: datetime


class RunPage(msgspec.Struct, kw_only=True):
    items: list[RunOut]
    next_cursor: str | None
