"""All SQL about prompts and their versions. Every query is scoped to one tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import any_, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from myaiserv.db.models import Prompt, PromptVersion
from myaiserv.kit.pagination import page_of, paginate


class PromptRepository:
    def __init__(self, session: AsyncSession, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def insert(self, row: dict[str, Any]) -> Prompt | None:
        """Insert; None when the tenant already has a prompt of this name."""
        stmt = (
            insert(Prompt)
            .values({**row, "tenant_id": self.tenant_id})
            .on_conflict_do_nothing(index_elements=["tenant_id", "name"])
            .returning(Prompt)
        )
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return result.one_or_none()

    async def get(self, prompt_id: UUID, *, for_update: bool = False) -> Prompt | None:
        stmt = select(Prompt).where(Prompt.id == prompt_id, Prompt.tenant_id == self.tenant_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def get_by_name(self, name: str) -> Prompt | None:
        return await self.session.scalar(
            select(Prompt).where(Prompt.name == name, Prompt.tenant_id == self.tenant_id)
        )

    async def delete(self, prompt_id: UUID) -> int | None:
        """Delete (its versions cascade); returns the deleted row's version, or None."""
        return await self.session.scalar(
            delete(Prompt)
            .where(Prompt.id == prompt_id, Prompt.tenant_id == self.tenant_id)
            .returning(Prompt.version)
        )

    async def list(
        self, *, cursor: str | None, limit: int, tag: str | None = None
    ) -> tuple[list[Prompt], str | None]:
        stmt = select(Prompt).where(Prompt.tenant_id == self.tenant_id)
        if tag:
            stmt = stmt.where(any_(Prompt.tags) == tag)
        stmt = paginate(stmt, Prompt.created_at, Prompt.id, cursor, limit)
        rows = list((await self.session.scalars(stmt)).all())
        return page_of(rows, limit)

    async def insert_version(self, row: dict[str, Any]) -> PromptVersion:
        stmt = (
            insert(PromptVersion)
            .values({**row, "tenant_id": self.tenant_id})
            .returning(PromptVersion)
        )
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return result.one()

    async def get_version(self, prompt_id: UUID, number: int) -> PromptVersion | None:
        """One version, with its prompt loaded (``version.prompt.name`` needs no I/O)."""
        return await self.session.scalar(
            select(PromptVersion)
            .options(joinedload(PromptVersion.prompt))
            .where(
                PromptVersion.prompt_id == prompt_id,
                PromptVersion.tenant_id == self.tenant_id,
                PromptVersion.number == number,
            )
        )

    async def list_versions(
        self, prompt_id: UUID, *, before: int | None, limit: int
    ) -> list[PromptVersion]:
        """Newest first; ``before``: only versions numbered lower. One extra row is
        fetched so the caller knows whether there is a next page."""
        stmt = select(PromptVersion).where(
            PromptVersion.prompt_id == prompt_id, PromptVersion.tenant_id == self.tenant_id
        )
        if before is not None:
            stmt = stmt.where(PromptVersion.number < before)
        stmt = stmt.order_by(PromptVersion.number.desc()).limit(limit + 1)
        return list((await self.session.scalars(stmt)).all())
