"""Cursor pagination over (created_at, id), newest first: stable while rows are added."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import Select, and_, or_

from myaiserv.errors import AppError

T = TypeVar("T")


class InvalidCursorError(AppError):
    status_code = 400
    title = "Invalid cursor"


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: UUID

    def encode(self) -> str:
        raw = json.dumps({"t": self.created_at.isoformat(), "id": str(self.id)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            padded = value + "=" * (-len(value) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(datetime.fromisoformat(data["t"]), UUID(data["id"]))
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursorError(
                "cursor: not a cursor returned by this API", extra={"field": "cursor"}
            ) from None


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def paginate(stmt: Select[Any], created_col: Any, id_col: Any, cursor: str | None, limit: int):
    """Order newest first and continue after ``cursor``; fetch one extra row to know
    whether there is a next page."""
    if cursor:
        c = Cursor.decode(cursor)
        stmt = stmt.where(
            or_(created_col < c.created_at, and_(created_col == c.created_at, id_col < c.id))
        )
    return stmt.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)


def page_of(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    if len(rows) > limit:
        last = rows[limit - 1]
        return rows[:limit], Cursor(last.created_at, last.id).encode()
    return rows, None
