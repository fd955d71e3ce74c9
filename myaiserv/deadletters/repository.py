"""All SQL about dead letters: a tenant's page of them (newest first), and putting them
back in the outbox after a fix, their records ``pending`` again, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.index_state import mark_pending
from myaiserv.db.models import DeadLetter
from myaiserv.db.outbox import Change, OutboxRepository
from myaiserv.search.kinds import EntityKind, stored_entity_kind


@dataclass(frozen=True)
class DeadLetterQuery:
    """Which dead letters: all of them (``tenant_id`` None: the operator's command) or a
    tenant's, optionally of one kind and/or one record, below ``before_id``."""

    tenant_id: UUID | None = None
    kind: EntityKind | None = None
    entity_id: UUID | None = None
    before_id: int | None = None
    limit: int | None = None


def _where(query: DeadLetterQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if query.tenant_id is not None:
        where.append(DeadLetter.tenant_id == query.tenant_id)
    if query.kind is not None:
        where.append(DeadLetter.kind == query.kind)
    if query.entity_id is not None:
        where.append(DeadLetter.entity_id == query.entity_id)
    if query.before_id is not None:
        where.append(DeadLetter.id < query.before_id)
    return where


async def find(
    session: AsyncSession, query: DeadLetterQuery
) -> tuple[list[DeadLetter], int | None]:
    """Newest first; the id the next page continues below (None: this is the last)."""
    stmt = select(DeadLetter).where(*_where(query)).order_by(DeadLetter.id.desc())
    if query.limit is not None:
        stmt = stmt.limit(query.limit + 1)
    rows = list(await session.scalars(stmt))
    if query.limit is not None and len(rows) > query.limit:
        return rows[: query.limit], rows[query.limit - 1].id
    return rows, None


async def requeue(session: AsyncSession, query: DeadLetterQuery) -> list[DeadLetter]:
    """Move the matching dead letters back to the outbox (one row each, at the version
    that failed: the indexer writes the record as it is now) and mark their records
    ``pending``; returns what was requeued. Rows are locked, so two requeues of the same
    dead letters cannot both queue them."""
    rows = list(
        await session.scalars(
            select(DeadLetter)
            .where(*_where(query))
            .order_by(DeadLetter.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not rows:
        return []
    await OutboxRepository(session).add(
        Change(
            row.tenant_id,
            stored_entity_kind(row.kind),
            row.entity_id,
            "delete" if row.op == "delete" else "upsert",
            row.version,
            {"reason": "requeue"},
        )
        for row in rows
    )
    by_kind: dict[EntityKind, list[UUID]] = {}
    for row in rows:
        if row.op != "delete":
            by_kind.setdefault(stored_entity_kind(row.kind), []).append(row.entity_id)
    for kind, ids in sorted(by_kind.items()):
        await mark_pending(session, kind, ids)
    await session.execute(delete(DeadLetter).where(DeadLetter.id.in_([r.id for r in rows])))
    return rows
