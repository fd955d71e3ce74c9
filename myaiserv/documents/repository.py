"""All SQL about documents. Every query is scoped to one tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import Document
from myaiserv.kit.pagination import page_of, paginate


class DocumentRepository:
    def __init__(self, session: AsyncSession, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def insert_many(self, rows: list[dict[str, Any]]) -> list[Document]:
        """Insert; rows whose content the tenant already has are skipped (dedupe by hash).
        Returns the inserted rows only."""
        if not rows:
            return []
        stmt = (
            insert(Document)
            .values([{**row, "tenant_id": self.tenant_id} for row in rows])
            .on_conflict_do_nothing(index_elements=["tenant_id", "source", "content_hash"])
            .returning(Document)
        )
        result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
        return list(result.all())

    async def by_keys(
        self, keys: list[tuple[str | None, str]]
    ) -> dict[tuple[str | None, str], Document]:
        """Existing documents by (source, content hash), the dedupe key."""
        if not keys:
            return {}
        rows = await self.session.scalars(
            select(Document).where(
                Document.tenant_id == self.tenant_id,
                Document.content_hash.in_({h for _, h in keys}),
            )
        )
        wanted = set(keys)
        return {(r.source, r.content_hash): r for r in rows if (r.source, r.content_hash) in wanted}

    async def get(self, document_id: UUID, *, for_update: bool = False) -> Document | None:
        stmt = select(Document).where(
            Document.id == document_id, Document.tenant_id == self.tenant_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        return await self.session.scalar(stmt)

    async def delete(self, document_id: UUID) -> int | None:
        """Delete; returns the deleted row's version, or None when there was none."""
        return await self.session.scalar(
            delete(Document)
            .where(Document.id == document_id, Document.tenant_id == self.tenant_id)
            .returning(Document.version)
        )

    async def list(
        self, *, cursor: str | None, limit: int, tag: str | None = None
    ) -> tuple[list[Document], str | None]:
        stmt = select(Document).where(Document.tenant_id == self.tenant_id)
        if tag:
            stmt = stmt.where(Document.tags.any(tag))
        stmt = paginate(stmt, Document.created_at, Document.id, cursor, limit)
        rows = list((await self.session.scalars(stmt)).all())
        return page_of(rows, limit)
