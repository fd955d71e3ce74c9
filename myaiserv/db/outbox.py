"""The transactional outbox: a row per change that must reach Elasticsearch, written in
the same transaction as the change itself, so an acknowledged write is never lost."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import OutboxEvent

UPSERT = "upsert"
DELETE = "delete"
# Indexers LISTEN on this channel: a write wakes them at once instead of at their next
# poll. NOTIFY is transactional: it is delivered on commit, never for a rolled-back write.
CHANNEL = "myaiserv_outbox"


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        tenant_id: UUID,
        kind: str,
        entity_id: UUID,
        op: str,
        version: int,
        payload: dict[str, Any] | None = None,
    ) -> None:
        await self.add_many(
            [
                {
                    "tenant_id": tenant_id,
                    "kind": kind,
                    "entity_id": entity_id,
                    "op": op,
                    "version": version,
                    "payload": payload or {},
                }
            ]
        )

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
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
