"""Documents over the wire. Unknown fields are rejected, so a typo is a 400, not a no-op."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from myaiserv.kit.index_state import IndexState

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=100)]
Text = Annotated[str, msgspec.Meta(min_length=1)]
JsonContentType = Literal["text/plain", "text/markdown", "text/html"]


class DocumentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    text: Text
    title: Title | None = None
    source: Source | None = None
    content_type: JsonContentType = "text/plain"
    tags: Tags = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class DocumentBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    documents: Annotated[list[DocumentCreate], msgspec.Meta(min_length=1)]


class DocumentUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    text: Text | msgspec.UnsetType = msgspec.UNSET
    title: Title | msgspec.UnsetType = msgspec.UNSET
    source: Source | msgspec.UnsetType | None = msgspec.UNSET
    content_type: JsonContentType | msgspec.UnsetType = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


class DocumentOut(IndexState, kw_only=True):
    id: UUID
    title: str
    source: str | None
    content_type: str
    tags: list[str]
    metadata: dict[str, Any]
    content_hash: str
    version: int
    created_at: datetime
    updated_at: datetime
    text: str | None = None
    deduplicated: bool = False
    pages: int | None = None  # a PDF's page count; each opens at /pages/{n}


class PageText(msgspec.Struct, kw_only=True):
    """One page of a PDF document: its text and where it lies in the document's."""

    document_id: UUID
    page: int
    pages: int
    text: str
    char_start: int
    char_end: int


class DocumentPage(msgspec.Struct, kw_only=True):
    items: list[DocumentOut]
    next_cursor: str | None


class BatchResult(msgspec.Struct, kw_only=True):
    created: int
    deduplicated: int
    items: list[DocumentOut]
