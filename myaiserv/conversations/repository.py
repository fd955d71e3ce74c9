"""All SQL about conversations and their messages. Every query is scoped to one tenant."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import Conversation, Message
from myaiserv.kit.pagination import page_of, paginate

_TICK = timedelta(microseconds=1)


class ConversationRepository:
    def __init__(self, session: AsyncSession, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    # -- conversations -------------------------------------------------------------------

    async def insert(self, *, title: str | None, metadata: dict[str, Any]) -> Conversation:
        stmt = (
            insert(Conversation)
            .values(tenant_id=self.tenant_id, title=title, metadata_=metadata)
            .returning(Conversation)
        )
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return result.one()

    async def get(self, conversation_id: UUID, *, for_update: bool = False) -> Conversation | None:
        stmt = select(Conversation).where(
            Conversation.id == conversation_id, Conversation.tenant_id == self.tenant_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def delete(self, conversation_id: UUID) -> int | None:
        """Delete; returns the deleted row's version, or None when there was none."""
        return await self.session.scalar(
            delete(Conversation)
            .where(Conversation.id == conversation_id, Conversation.tenant_id == self.tenant_id)
            .returning(Conversation.version)
        )

    async def list(
        self, *, cursor: str | None, limit: int
    ) -> tuple[list[Conversation], str | None]:
        stmt = select(Conversation).where(Conversation.tenant_id == self.tenant_id)
        stmt = paginate(stmt, Conversation.created_at, Conversation.id, cursor, limit)
        rows = list((await self.session.scalars(stmt)).all())
        return page_of(rows, limit)

    async def message_counts(self, conversation_ids: list[UUID]) -> dict[UUID, int]:
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(Message.conversation_id, func.count())
            .where(
                Message.tenant_id == self.tenant_id,
                Message.conversation_id.in_(conversation_ids),
            )
            .group_by(Message.conversation_id)
        )
        counts = {cid: int(n) for cid, n in rows}
        return {cid: counts.get(cid, 0) for cid in conversation_ids}

    # -- messages ------------------------------------------------------------------------

    async def _next_message_time(self, conversation_id: UUID) -> datetime:
        """Later than every message already in the conversation, and than the wall clock:
        messages added in one transaction (where now() does not move) keep their order."""
        return await self.session.scalar(
            select(
                func.greatest(func.clock_timestamp(), func.max(Message.created_at) + _TICK)
            ).where(Message.conversation_id == conversation_id)
        )

    async def insert_messages(
        self, conversation_id: UUID, rows: list[dict[str, Any]]
    ) -> list[Message]:
        """Insert in the given order; each message is stamped one microsecond after the
        previous one, so (created_at, id) order is the order they were given in."""
        if not rows:
            return []
        start = await self._next_message_time(conversation_id)
        values = [
            {
                **row,
                "tenant_id": self.tenant_id,
                "conversation_id": conversation_id,
                "created_at": start + i * _TICK,
                "updated_at": start + i * _TICK,
            }
            for i, row in enumerate(rows)
        ]
        stmt = insert(Message).values(values).returning(Message)
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return sorted(result.all(), key=lambda m: (m.created_at, m.id))

    async def delete_message(self, conversation_id: UUID, message_id: UUID) -> int | None:
        """Delete; returns the deleted row's version, or None when there was none."""
        return await self.session.scalar(
            delete(Message)
            .where(
                Message.id == message_id,
                Message.conversation_id == conversation_id,
                Message.tenant_id == self.tenant_id,
            )
            .returning(Message.version)
        )

    async def delete_messages(self, conversation_id: UUID) -> list[tuple[UUID, int]]:
        """Delete every message of the conversation; returns (id, version) of each."""
        rows = await self.session.execute(
            delete(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.tenant_id == self.tenant_id,
            )
            .returning(Message.id, Message.version)
        )
        return [(mid, int(version)) for mid, version in rows]

    async def list_messages(
        self, conversation_id: UUID, *, cursor: str | None, limit: int
    ) -> tuple[list[Message], str | None]:
        stmt = select(Message).where(
            Message.conversation_id == conversation_id, Message.tenant_id == self.tenant_id
        )
        # In the order they were said.
        stmt = paginate(stmt, Message.created_at, Message.id, cursor, limit, oldest_first=True)
        rows = list((await self.session.scalars(stmt)).all())
        return page_of(rows, limit)

    async def recent_messages(self, conversation_id: UUID, *, limit: int) -> list[Message]:
        """The last ``limit`` messages, newest first."""
        stmt = (
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.tenant_id == self.tenant_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())
