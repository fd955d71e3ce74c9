"""Conversations and their messages: create, update, delete, read, and the recent history
the RAG code uses as memory. Every change writes its outbox rows in the same transaction;
the caller's unit of work commits."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.conversations.repository import ConversationRepository, MessageRepository
from myaiserv.db.models import Conversation, IndexStatus, Message
from myaiserv.errors import NotFoundError
from myaiserv.kit.validation import InvalidInputError, check_metadata, reject_nul
from myaiserv.runs.repository import RunRepository

ROLES = ("system", "user", "assistant", "tool")
MAX_TITLE_CHARS = 1000  # the column's length
MAX_CONTENT_CHARS = 1_000_000
MAX_INT = 2**31 - 1  # PostgreSQL integer


@dataclass
class NewMessage:
    role: str
    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    token_count: int | None = None


def _check_title(title: Any) -> None:
    if title is None:
        return
    if not isinstance(title, str) or not 1 <= len(title) <= MAX_TITLE_CHARS:
        raise InvalidInputError("title", f"must be 1 to {MAX_TITLE_CHARS} characters, or null")
    reject_nul(title, "title")


def _check_metadata(metadata: Any) -> None:
    check_metadata(metadata)


def _message_row(msg: NewMessage, where: str) -> dict[str, Any]:
    if msg.role not in ROLES:
        raise InvalidInputError(f"{where}role", f"must be one of {', '.join(ROLES)}")
    if not isinstance(msg.content, str) or not 1 <= len(msg.content) <= MAX_CONTENT_CHARS:
        raise InvalidInputError(f"{where}content", f"must be 1 to {MAX_CONTENT_CHARS} characters")
    reject_nul(msg.content, f"{where}content")
    row: dict[str, Any] = {"role": msg.role, "content": msg.content}
    for name in ("prompt_tokens", "completion_tokens", "token_count"):
        value = getattr(msg, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT
        ):
            raise InvalidInputError(f"{where}{name}", f"must be an integer from 0 to {MAX_INT}")
        row[name] = value
    return row


class ConversationService:
    def __init__(self, session: AsyncSession, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.repo = ConversationRepository(session, tenant_id)
        self.messages = MessageRepository(session, tenant_id)

    # -- conversations -------------------------------------------------------------------

    async def create(
        self,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
        messages: Sequence[NewMessage] = (),
    ) -> tuple[Conversation, list[Message]]:
        """A conversation, optionally with its first messages (kept in the given order)."""
        metadata = {} if metadata is None else metadata
        _check_title(title)
        _check_metadata(metadata)
        rows = [_message_row(m, f"messages[{i}].") for i, m in enumerate(messages)]
        conv = await self.repo.add({"title": title, "metadata_": metadata})
        inserted = await self.messages.append(conv.id, rows)
        await self.repo.record(
            [
                self.repo.upserted(conv.id, conv.version),
                *(self.messages.upserted(m.id, m.version) for m in inserted),
            ]
        )
        return conv, inserted

    async def get(self, conversation_id: UUID) -> Conversation:
        return await self.repo.get(conversation_id)

    async def get_with_count(self, conversation_id: UUID) -> tuple[Conversation, int]:
        conv = await self.get(conversation_id)
        counts = await self.messages.counts([conv.id])
        return conv, counts[conv.id]

    async def list(
        self, *, cursor: str | None, limit: int, index_status: IndexStatus | None = None
    ) -> tuple[list[tuple[Conversation, int]], str | None]:
        """Newest first, each with its message count."""
        rows, next_cursor = await self.repo.list(
            cursor=cursor, limit=limit, index_status=index_status
        )
        counts = await self.messages.counts([c.id for c in rows])
        return [(c, counts[c.id]) for c in rows], next_cursor

    async def update(
        self, conversation_id: UUID, changes: dict[str, Any]
    ) -> tuple[Conversation, int]:
        """Change title and/or metadata; the version goes up by one."""
        conv = await self.repo.get(conversation_id, for_update=True)
        if "title" in changes:
            _check_title(changes["title"])
            conv.title = changes["title"]
        if "metadata" in changes:
            _check_metadata(changes["metadata"])
            conv.metadata_ = changes["metadata"]
        await self.repo.touch(conv)
        counts = await self.messages.counts([conv.id])
        return conv, counts[conv.id]

    async def delete(self, conversation_id: UUID) -> None:
        """Delete the conversation with its messages; runs that referred to it stay,
        unlinked. Each delete outranks every version the entity had in the index."""
        # Locked first: no message can be added (nor run linked) while it goes away.
        await self.repo.get(conversation_id, for_update=True)
        messages = await self.messages.delete_all(conversation_id)
        runs = RunRepository(self.session, self.tenant_id)
        detached = await runs.detach_conversation(conversation_id)
        version = await self.repo.delete(conversation_id)
        if version is None:  # pragma: no cover - the row is locked above
            raise NotFoundError(f"conversation {conversation_id} not found")
        await self.repo.record(
            [
                self.repo.deleted(conversation_id, version),
                *(self.messages.deleted(mid, v) for mid, v in messages),
                *(runs.upserted(rid, v) for rid, v in detached),
            ]
        )

    # -- messages ------------------------------------------------------------------------

    async def add_messages(
        self, conversation_id: UUID, messages: Sequence[NewMessage]
    ) -> builtins.list[Message]:
        """Append messages in the given order (they sort after every earlier one)."""
        where = "messages[{}]." if len(messages) > 1 else ""
        rows = [_message_row(m, where.format(i)) for i, m in enumerate(messages)]
        # Locked: appends to one conversation are serialised, so their order is total.
        await self.repo.get(conversation_id, for_update=True)
        inserted = await self.messages.append(conversation_id, rows)
        await self.messages.record(self.messages.upserted(m.id, m.version) for m in inserted)
        return inserted

    async def add_message(self, conversation_id: UUID, message: NewMessage) -> Message:
        [inserted] = await self.add_messages(conversation_id, [message])
        return inserted

    async def list_messages(
        self, conversation_id: UUID, *, cursor: str | None, limit: int
    ) -> tuple[builtins.list[Message], str | None]:
        """Oldest first."""
        await self.get(conversation_id)
        return await self.messages.list_in(conversation_id, cursor=cursor, limit=limit)

    async def history(self, conversation_id: UUID, *, limit: int) -> builtins.list[Message]:
        """The conversation's last ``limit`` messages, newest first: memory for RAG."""
        if limit < 1:
            return []
        await self.get(conversation_id)
        return await self.messages.recent(conversation_id, limit=limit)

    async def delete_message(self, conversation_id: UUID, message_id: UUID) -> None:
        version = await self.messages.delete_from(conversation_id, message_id)
        if version is None:
            raise NotFoundError(f"message {message_id} not found in conversation {conversation_id}")
        await self.messages.record([self.messages.deleted(message_id, version)])
