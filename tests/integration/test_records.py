"""The base every record repository shares (myaiserv/db/repository.py), checked once for
each of them against the real database: tenant scoping (another tenant's row is a 404),
newest-first pages, and the version and outbox row that go with every change, in the
transaction of the change."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.conversations.repository import ConversationRepository, MessageRepository
from myaiserv.db.models import OutboxEvent
from myaiserv.db.repository import RecordRepository
from myaiserv.documents.repository import DocumentRepository
from myaiserv.errors import NotFoundError
from myaiserv.prompts.repository import PromptRepository
from myaiserv.resources import Resources
from myaiserv.runs.repository import RunRepository
from tests.conftest import make_tenant

pytestmark = pytest.mark.integration

Factory = Callable[[AsyncSession, uuid.UUID], Awaitable[tuple[RecordRepository[Any], dict]]]


async def _document(session: AsyncSession, tenant_id: uuid.UUID):
    text = f"text {uuid.uuid4()}"
    row = {"title": "t", "content_type": "text/plain", "text": text, "content_hash": text}
    return DocumentRepository(session, tenant_id), row


async def _prompt(session: AsyncSession, tenant_id: uuid.UUID):
    return PromptRepository(session, tenant_id), {"name": f"p.{uuid.uuid4().hex[:8]}"}


async def _run(session: AsyncSession, tenant_id: uuid.UUID):
    row = {"provider": "p", "model": "m", "input": "in", "status": "ok"}
    return RunRepository(session, tenant_id), row


async def _conversation(session: AsyncSession, tenant_id: uuid.UUID):
    return ConversationRepository(session, tenant_id), {"title": "c"}


async def _message(session: AsyncSession, tenant_id: uuid.UUID):
    conversation = await ConversationRepository(session, tenant_id).add({"title": "c"})
    row = {"conversation_id": conversation.id, "role": "user", "content": "hi"}
    return MessageRepository(session, tenant_id), row


FACTORIES = {
    "documents": _document,
    "prompts": _prompt,
    "runs": _run,
    "conversations": _conversation,
    "messages": _message,
}


async def _outbox(resources: Resources, entity_id: uuid.UUID) -> list[tuple[str, str, int]]:
    async with resources.sessionmaker() as session:
        rows = await session.execute(
            select(OutboxEvent.kind, OutboxEvent.op, OutboxEvent.version)
            .where(OutboxEvent.entity_id == entity_id)
            .order_by(OutboxEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.parametrize("kind", FACTORIES)
async def test_a_record_is_scoped_versioned_and_recorded(resources: Resources, kind: str) -> None:
    owner, other = await make_tenant(resources), await make_tenant(resources)
    async with resources.sessionmaker() as session, session.begin():
        repo, row = await FACTORIES[kind](session, owner.id)
        entity = await repo.add(row)
        await repo.record([repo.upserted(entity.id, entity.version)])
    assert repo.kind == kind and entity.version == 1

    async with resources.sessionmaker() as session, session.begin():
        foreign = type(repo)(session, other.id)
        with pytest.raises(NotFoundError, match=f"^{repo.noun} {entity.id} not found$"):
            await foreign.get(entity.id)
        with pytest.raises(NotFoundError):
            await foreign.remove(entity.id)
        assert await foreign.delete(entity.id) is None

    async with resources.sessionmaker() as session, session.begin():
        mine = type(repo)(session, owner.id)
        found = await mine.get(entity.id, for_update=True)
        before = found.updated_at
        await mine.touch(found)
    assert found.version == 2 and found.updated_at > before

    # A change rolled back leaves neither its version nor its outbox row.
    with pytest.raises(RuntimeError, match="rolled back"):  # noqa: PT012 - a whole transaction
        async with resources.sessionmaker() as session, session.begin():
            mine = type(repo)(session, owner.id)
            await mine.touch(await mine.get(entity.id))
            raise RuntimeError("rolled back")

    async with resources.sessionmaker() as session, session.begin():
        mine = type(repo)(session, owner.id)
        assert (await mine.get(entity.id)).version == 2
        await mine.remove(entity.id)
    async with resources.sessionmaker() as session, session.begin():
        with pytest.raises(NotFoundError):
            await type(repo)(session, owner.id).remove(entity.id)

    assert await _outbox(resources, entity.id) == [
        (kind, "upsert", 1),
        (kind, "upsert", 2),
        (kind, "delete", 3),  # one past the last version: it outranks every indexed one
    ]


async def test_pages_are_newest_first_and_only_the_tenants(resources: Resources) -> None:
    owner, other = await make_tenant(resources), await make_tenant(resources)
    async with resources.sessionmaker() as session, session.begin():
        runs = RunRepository(session, owner.id)
        added = [
            await runs.add({"provider": "p", "model": f"m{i}", "input": "", "status": "ok"})
            for i in range(5)
        ]
        await RunRepository(session, other.id).add(
            {"provider": "p", "model": "m", "input": "", "status": "ok"}
        )
    newest_first = sorted(added, key=lambda r: (r.created_at, r.id), reverse=True)

    seen, cursor = [], None
    async with resources.sessionmaker() as session:
        runs = RunRepository(session, owner.id)
        while True:
            rows, cursor = await runs.page(cursor=cursor, limit=2)
            seen += [r.id for r in rows]
            if cursor is None:
                break
        assert seen == [r.id for r in newest_first]
        only_m3, _ = await runs.list(cursor=None, limit=10, model="m3")
        assert [r.model for r in only_m3] == ["m3"]
