"""Each record's index state, kept beside it in PostgreSQL so GETs and lists can show it
(and filter on it) without asking Elasticsearch.

A write leaves the record ``pending`` (new rows by the column's default, changes through
``RecordRepository.touch``, requeues through ``mark_pending``). The indexer settles a
batch with ``settle``: ``indexed`` once Elasticsearch acknowledged the version it wrote,
``failed`` with the reason once the change is dead-lettered. Both only touch a row whose
version is not newer than the one written, so a slow or stale batch can never mark a
newer, still pending version as indexed (or failed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Table, Uuid, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import INDEX_STATUSES, RECORD_MODELS, IndexStatus
from myaiserv.search.kinds import EntityKind

MAX_ERROR_CHARS = 2000


def _table(kind: EntityKind) -> Table:
    model = RECORD_MODELS[kind]
    return model.__table__  # type: ignore[attr-defined,no-any-return] # the mixin's subclasses


def pending_values() -> dict[str, Any]:
    """The columns of a record whose newest version is not yet settled."""
    return {"index_status": "pending", "index_error": None, "index_failed_at": None}


async def settle(
    session: AsyncSession,
    kind: EntityKind,
    status: IndexStatus,
    written: Mapping[UUID, int],
    errors: Mapping[UUID, str] | None = None,
) -> None:
    """Mark the records of ``kind`` ``status`` (``indexed``, or ``failed`` with their
    ``errors``), each only if its version is at most the one the indexer wrote."""
    if not written:
        return
    table = _table(kind)
    failed = status == "failed"
    stmt = (
        update(table)
        .where(table.c.id == bindparam("entity_id"), table.c.version <= bindparam("written"))
        .values(
            index_status=status,
            # Not named "error": a parameter named like a column (runs have ``error``)
            # would set that column too.
            index_error=bindparam("failure") if failed else None,
            index_failed_at=func.now() if failed else None,
        )
    )
    errors = errors or {}
    # Sorted, so two batches settling overlapping records lock them in the same order.
    params = [
        {"entity_id": eid, "written": v, "failure": errors.get(eid, "")[:MAX_ERROR_CHARS]}
        for eid, v in sorted(written.items())
    ]
    await session.execute(stmt, params)


async def mark_pending(session: AsyncSession, kind: EntityKind, ids: Iterable[UUID]) -> None:
    """The records are queued for indexing again (a requeue after a fix)."""
    ids = sorted(set(ids))
    if ids:
        table = _table(kind)
        await session.execute(update(table).where(table.c.id.in_(ids)).values(pending_values()))


async def count_states(
    session: AsyncSession, kind: EntityKind, ids: Sequence[UUID]
) -> dict[IndexStatus, int]:
    """How many of these records are pending, indexed and failed (one array parameter,
    however many ids: an ingest follows tens of thousands of documents with it)."""
    table = _table(kind)
    counts = dict.fromkeys(INDEX_STATUSES, 0)
    if ids:
        rows = await session.execute(
            select(table.c.index_status, func.count())
            .where(table.c.id == any_(bindparam("ids", list(ids), type_=ARRAY(Uuid()))))
            .group_by(table.c.index_status)
        )
        for status, n in rows:
            counts[status] = int(n)
    return counts
