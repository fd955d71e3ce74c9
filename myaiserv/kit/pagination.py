"""Keyset pagination of record lists: over (created_at, id), stable while rows are added,
or below a number (prompt versions, audit events). Cursors go through ``kit.cursor``."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, and_, or_

from myaiserv.kit import cursor as codec
from myaiserv.kit.cursor import InvalidCursorError


def _position(cursor: str) -> tuple[datetime, UUID]:
    position = codec.decode(cursor)
    try:
        return datetime.fromisoformat(position["t"]), UUID(position["id"])
    except (KeyError, TypeError, ValueError):
        raise InvalidCursorError from None


def paginate(
    stmt: Select[Any],
    created_col: Any,
    id_col: Any,
    cursor: str | None,
    limit: int,
    *,
    oldest_first: bool = False,
) -> Select[Any]:
    """Order newest first (or oldest first) and continue after ``cursor``; fetch one
    extra row to know whether there is a next page."""
    if cursor:
        created, id_ = _position(cursor)
        if oldest_first:
            after = or_(created_col > created, and_(created_col == created, id_col > id_))
        else:
            after = or_(created_col < created, and_(created_col == created, id_col < id_))
        stmt = stmt.where(after)
    if oldest_first:
        return stmt.order_by(created_col, id_col).limit(limit + 1)
    return stmt.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)


def page_of(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page and the cursor of the next one (None: this is the last)."""
    if len(rows) > limit:
        last = rows[limit - 1]
        return rows[:limit], codec.encode({"t": last.created_at.isoformat(), "id": str(last.id)})
    return rows, None


def below(cursor: str | None, *, high: int) -> int | None:
    """The number the next page continues below (None: the first page)."""
    if cursor is None:
        return None
    return codec.integer(codec.decode(cursor), "below", low=1, high=high)


def below_cursor(number: int) -> str:
    return codec.encode({"below": number})
