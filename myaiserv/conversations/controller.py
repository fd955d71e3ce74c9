"""/v1/conversations: conversations and their messages; create, read, update, delete, list."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.conversations.schemas import (
    ConversationCreate,
    ConversationOut,
    ConversationPage,
    ConversationUpdate,
    MessageCreate,
    MessageOut,
    MessagePage,
)
from myaiserv.conversations.service import ConversationService, NewMessage
from myaiserv.db.models import Conversation, IndexStatus, Message
from myaiserv.kit.index_state import index_state
from myaiserv.kit.validation import changes_of
from myaiserv.resources import Resources


def message_out(msg: Message) -> MessageOut:
    return MessageOut(
        id=msg.id,
        conversation_id=msg.conversation_id,
        role=msg.role,
        content=msg.content,
        prompt_tokens=msg.prompt_tokens,
        completion_tokens=msg.completion_tokens,
        token_count=msg.token_count,
        version=msg.version,
        created_at=msg.created_at,
        updated_at=msg.updated_at,
    )


def to_out(
    conv: Conversation, message_count: int, messages: list[Message] | None = None
) -> ConversationOut:
    return ConversationOut(
        id=conv.id,
        title=conv.title,
        metadata=dict(conv.metadata_ or {}),
        message_count=message_count,
        version=conv.version,
        created_at=conv.created_at,
        updated_at=conv.updated_at,
        messages=None if messages is None else [message_out(m) for m in messages],
        **index_state(conv),
    )


def _new(item: MessageCreate) -> NewMessage:
    return NewMessage(
        role=item.role,
        content=item.content,
        prompt_tokens=item.prompt_tokens,
        completion_tokens=item.completion_tokens,
        token_count=item.token_count,
    )


async def provide_conversation_service(
    db_session: AsyncSession, principal: Principal
) -> ConversationService:
    return ConversationService(db_session, principal.tenant_id)


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ["conversations"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_conversation_service)}  # noqa: RUF012

    @post("/", guards=[requires("write")], status_code=201)
    async def create(
        self,
        data: ConversationCreate,
        service: NamedDependency[ConversationService],
    ) -> ConversationOut:
        """Start a conversation, optionally with its first messages (kept in the given
        order; returned with their ids)."""
        conv, messages = await service.create(
            title=data.title,
            metadata=data.metadata,
            messages=[_new(m) for m in data.messages],
        )
        return to_out(conv, len(messages), messages)

    @get("/", guards=[requires("read")])
    async def list_conversations(
        self,
        service: NamedDependency[ConversationService],
        resources: NamedDependency[Resources],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> ConversationPage:
        """Newest first (only those in ``index_status``, if given); pass ``next_cursor``
        back as ``cursor`` for the next page."""
        limit = min(limit, resources.settings.limits.max_page_size)
        rows, next_cursor = await service.list(
            cursor=cursor, limit=limit, index_status=index_status
        )
        return ConversationPage(items=[to_out(c, n) for c, n in rows], next_cursor=next_cursor)

    @get("/{conversation_id:uuid}", guards=[requires("read")])
    async def get_conversation(
        self,
        conversation_id: UUID,
        service: NamedDependency[ConversationService],
    ) -> ConversationOut:
        return to_out(*await service.get_with_count(conversation_id))

    @patch("/{conversation_id:uuid}", guards=[requires("write")])
    async def update_conversation(
        self,
        conversation_id: UUID,
        data: ConversationUpdate,
        service: NamedDependency[ConversationService],
    ) -> ConversationOut:
        """Change the title and/or metadata; the conversation's version goes up by one."""
        changes = changes_of(data)
        return to_out(*await service.update(conversation_id, changes))

    @delete("/{conversation_id:uuid}", guards=[requires("write")])
    async def delete_conversation(
        self,
        conversation_id: UUID,
        service: NamedDependency[ConversationService],
    ) -> None:
        """Delete the conversation and its messages; runs that referred to it are kept,
        without the reference."""
        await service.delete(conversation_id)

    @post("/{conversation_id:uuid}/messages", guards=[requires("write")], status_code=201)
    async def add_message(
        self,
        conversation_id: UUID,
        data: MessageCreate,
        service: NamedDependency[ConversationService],
    ) -> MessageOut:
        """Append a message; it sorts after every earlier message of the conversation."""
        return message_out(await service.add_message(conversation_id, _new(data)))

    @get("/{conversation_id:uuid}/messages", guards=[requires("read")])
    async def list_messages(
        self,
        conversation_id: UUID,
        service: NamedDependency[ConversationService],
        resources: NamedDependency[Resources],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: str | None = None,
    ) -> MessagePage:
        """Oldest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        limit = min(limit, resources.settings.limits.max_page_size)
        rows, next_cursor = await service.list_messages(conversation_id, cursor=cursor, limit=limit)
        return MessagePage(items=[message_out(m) for m in rows], next_cursor=next_cursor)

    @delete("/{conversation_id:uuid}/messages/{message_id:uuid}", guards=[requires("write")])
    async def delete_message(
        self,
        conversation_id: UUID,
        message_id: UUID,
        service: NamedDependency[ConversationService],
    ) -> None:
        await service.delete_message(conversation_id, message_id)
