"""Conversations and their messages over the wire. Unknown fields are rejected, so a typo
is a 400, not a no-op. Ranges (token counts, content length) are checked by the service,
which the RAG code calls directly too, so they fail the same way (422) from both."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from myaiserv.kit.index_state import IndexState

Role = Literal["system", "user", "assistant", "tool"]
MAX_INITIAL_MESSAGES = 1000


class MessageCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    role: Role
    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    token_count: int | None = None


class ConversationCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    messages: Annotated[list[MessageCreate], msgspec.Meta(max_length=MAX_INITIAL_MESSAGES)] = (
        msgspec.field(default_factory=list)
    )


class ConversationUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    title: str | msgspec.UnsetType | None = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class MessageOut(msgspec.Struct, kw_only=True):
    id: UUID
    conversation_id: UUID
    role: str
    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    token_count: int | None
    version: int
    created_at: datetime
    updated_at: datetime


class ConversationOut(IndexState, kw_only=True):
    id: UUID
    title: str | None
    metadata: dict[str, Any]
    message_count: int
    version: int
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut] | None = None  # on create: the initial messages


class ConversationPage(msgspec.Struct, kw_only=True):
    items: list[ConversationOut]
    next_cursor: str | None


class MessagePage(msgspec.Struct, kw_only=True):
    items: list[MessageOut]
    next_cursor: str | None
