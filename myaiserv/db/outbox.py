"""The transactional outbox: a row per change that must reach Elasticsearch, written in
the same transaction as the change itself, so an acknowledged write is never lost."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import OutboxEvent
from myaiserv.search.kinds import EntityKind
from myaiserv.tracing.context import current_traceparent

Op = Literal["upsert", "delete"]
UPSERT: Op = "upsert"
DELETE: Op = "delete"
# Indexers LISTEN on this channel: a write wakes them at once instead of at their next
# poll. NOTIFY is transactional: it is delivered on commit, never for a rolled-back write.
CHANNEL = "myaiserv_outbox"


@dataclass(frozen=True)
class Change:
    """An entity changed and its index entry must follow: one outbox row."""

    tenant_id: UUID
    kind: EntityKind
    entity_id: UUID
    op: Op
    version: int
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def upsert(
        cls, tenant_id: UUID, kind: EntityKind, entity_id: UUID, version: int, **payload: Any
    ) -> Change:
        """The entity as it is now, at ``version``."""
        return cls(tenant_id, kind, entity_id, UPSERT, version, payload)

    @classmethod
    def delete(
        cls,
        tenant_id: UUID,
        kind: EntityKind,
        entity_id: UUID,
        last_version: int,
        **payload: Any,
    ) -> Change:
        """The entity is gone. The delete is one version past ``last_version`` (the last
        one the entity had, or the one the index holds), so it outranks it."""
        return cls(tenant_id, kind, entity_id, DELETE, last_version + 1, payload)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, changes: Iterable[Change]) -> None:
        """One row per change, in one statement, and a wake-up for the indexers. Each row
        carries the current trace (when one is recorded): the indexer continues it."""
        traceparent = current_traceparent()
        rows = [{**asdict(change), "traceparent": traceparent} for change in changes]
        if rows:
            await self.session.execute(insert(OutboxEvent), rows)
            await self.session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})

    async def lag(self) -> tuple[int, float]:
        """(pending rows, age in seconds of the oldest one)."""
        row = (
            await self.session.execute(
                select(
                    func.count(OutboxEvent.id),
                    func.coalesce(
                        func.extract("epoch", func.now() - func.min(OutboxEvent.created_at)), 0
                    ),
                )
            )
        ).one()
        return int(row[0]), float(row[1])
