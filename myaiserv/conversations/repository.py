"""All SQL about conversations and their messages. Every query is scoped to one tenant."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select

from myaiserv.db.models import Conversation, IndexStatus, Message
from myaiserv.db.repository import RecordRepository
from myaiserv.kit.pagination import page_of, paginate

_TICK = timedelta(microseconds=1)


class ConversationRepository(RecordRepository[Conversation]):
    model = Conversation
    kind = "conversations"
    noun = "conversation"

    async def list(
        self, *, cursor: str | None, limit: int, index_status: IndexStatus | None = None
    ) -> tuple[list[Conversation], str | None]:
        return await self.page(cursor=cursor, limit=limit, index_status=index_status)


class MessageRepository(RecordRepository[Message]):
    model = Message
    kind = "messages"
    noun = "message"

    async def counts(self, conversation_ids: list[UUID]) -> dict[UUID, int]:
        """Messages per conversation."""
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

    async def _next_time(self, conversation_id: UUID) -> datetime:
        """Later than every message already in the conversation, and than the wall clock:
        messages added in one transaction (where now() does not move) keep their order."""
        stamp: datetime | None = await self.session.scalar(
            select(
                func.greatest(func.clock_timestamp(), func.max(Message.created_at) + _TICK)
            ).where(Message.conversation_id == conversation_id)
        )
        if stamp is None:  # greatest() ignores NULLs; clock_timestamp() is never NULL
            raise RuntimeError("the database has no clock")
        return stamp

    async def append(self, conversation_id: UUID, rows: list[dict[str, Any]]) -> list[Message]:
        """Insert in the given order; each message is stamped one microsecond after the
        previous one, so (created_at, id) order is the order they were given in."""
        if not rows:
            return []
        start = await self._next_time(conversation_id)
        inserted = await self.add_many(
            [
                {
                    **row,
                    "conversation_id": conversation_id,
                    "created_at": start + i * _TICK,
                    "updated_at": start + i * _TICK,
                }
                for i, row in enumerate(rows)
            ]
        )
        return sorted(inserted, key=lambda m: (m.created_at, m.id))

    async def delete_from(self, conversation_id: UUID, message_id: UUID) -> int | None:
        """Delete; returns the deleted row's version, or None when the conversation has
        no such message."""
        return await self.delete(message_id, Message.conversation_id == conversation_id)

    async def delete_all(self, conversation_id: UUID) -> list[tuple[UUID, int]]:
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

    async def list_in(
        self, conversation_id: UUID, *, cursor: str | None, limit: int
    ) -> tuple[list[Message], str | None]:
        """Oldest first."""
        stmt = self.scoped(Message.conversation_id == conversation_id)
        # In the order they were said.
        stmt = paginate(stmt, Message.created_at, Message.id, cursor, limit, oldest_first=True)
        rows = list((await self.session.scalars(stmt)).all())
        return page_of(rows, limit)

    async def recent(self, conversation_id: UUID, *, limit: int) -> list[Message]:
        """The last ``limit`` messages, newest first."""
        stmt = (
            self.scoped(Message.conversation_id == conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())
