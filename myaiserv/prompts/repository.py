"""All SQL about prompts and their versions. Every query is scoped to one tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import any_, insert, select
from sqlalchemy.orm import joinedload

from myaiserv.db.models import IndexStatus, Prompt, PromptVersion
from myaiserv.db.repository import RecordRepository


class PromptRepository(RecordRepository[Prompt]):
    model = Prompt
    kind = "prompts"
    noun = "prompt"

    async def insert(self, row: dict[str, Any]) -> Prompt | None:
        """Insert; None when the tenant already has a prompt of this name."""
        inserted = await self.add_many([row], unless_taken=("tenant_id", "name"))
        return inserted[0] if inserted else None

    async def get_by_name(self, name: str) -> Prompt | None:
        return await self.session.scalar(self.scoped(Prompt.name == name))

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

    async def list(
        self,
        *,
        cursor: str | None,
        limit: int,
        tag: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> tuple[list[Prompt], str | None]:
        return await self.page(
            *([any_(Prompt.tags) == tag] if tag else []),
            cursor=cursor,
            limit=limit,
            index_status=index_status,
        )
