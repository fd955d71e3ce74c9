"""All SQL about runs. Every query is scoped to one tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import Conversation, Prompt, PromptVersion, Run
from myaiserv.kit.pagination import page_of, paginate


class RunRepository:
    def __init__(self, session: AsyncSession, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def insert(self, values: dict[str, Any]) -> Run:
        stmt = insert(Run).values({**values, "tenant_id": self.tenant_id}).returning(Run)
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return result.one()

    async def get(self, run_id: UUID, *, for_update: bool = False) -> Run | None:
        stmt = select(Run).where(Run.id == run_id, Run.tenant_id == self.tenant_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def delete(self, run_id: UUID) -> int | None:
        """Delete; returns the deleted row's version, or None when there was none."""
        return await self.session.scalar(
            delete(Run)
            .where(Run.id == run_id, Run.tenant_id == self.tenant_id)
            .returning(Run.version)
        )

    async def list(
        self,
        *,
        cursor: str | None,
        limit: int,
        provider: str | None = None,
        model: str | None = None,
        status: str | None = None,
    ) -> tuple[list[Run], str | None]:
        stmt = select(Run).where(Run.tenant_id == self.tenant_id)
        if provider is not None:
            stmt = stmt.where(Run.provider == provider)
        if model is not None:
            stmt = stmt.where(Run.model == model)
        if status is not None:
            stmt = stmt.where(Run.status == status)
        stmt = paginate(stmt, Run.created_at, Run.id, cursor, limit)
        rows = list((await self.session.scalars(stmt)).all())
        return page_of(rows, limit)

    async def conversation_exists(self, conversation_id: UUID) -> bool:
        """Key-share locked: the conversation cannot be deleted before this run commits."""
        found = await self.session.scalar(
            select(Conversation.id)
            .where(Conversation.id == conversation_id, Conversation.tenant_id == self.tenant_id)
            .with_for_update(read=True, key_share=True)
        )
        return found is not None

    async def prompt_version(self, prompt_version_id: UUID) -> tuple[str, int] | None:
        """(prompt name, version number) of this tenant's prompt version, key-share locked
        like ``conversation_exists``."""
        row = (
            await self.session.execute(
                select(Prompt.name, PromptVersion.number)
                .join(Prompt, Prompt.id == PromptVersion.prompt_id)
                .where(
                    PromptVersion.id == prompt_version_id,
                    PromptVersion.tenant_id == self.tenant_id,
                )
                .with_for_update(of=PromptVersion, read=True, key_share=True)
            )
        ).first()
        return (row[0], int(row[1])) if row else None

    async def detach_conversation(self, conversation_id: UUID) -> list[tuple[UUID, int]]:
        """Before a conversation is deleted: unlink its runs (the foreign key would do it
        too, but silently) and bump their versions, so their index entries follow.
        Returns (id, new version) per run."""
        rows = await self.session.execute(
            update(Run)
            .where(Run.conversation_id == conversation_id, Run.tenant_id == self.tenant_id)
            .values(conversation_id=None, version=Run.version + 1, updated_at=func.now())
            .returning(Run.id, Run.version)
        )
        return [(rid, int(version)) for rid, version in rows]
