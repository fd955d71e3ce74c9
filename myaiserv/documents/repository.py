"""All SQL about documents. Every query is scoped to one tenant."""

from __future__ import annotations

from typing import Any

from sqlalchemy import any_

from myaiserv.db.models import Document, IndexStatus
from myaiserv.db.repository import RecordRepository

# The same content from the same source is the same document.
DEDUPE_KEY = ("tenant_id", "source", "content_hash")


class DocumentRepository(RecordRepository[Document]):
    model = Document
    kind = "documents"
    noun = "document"

    async def insert_new(self, rows: list[dict[str, Any]]) -> list[Document]:
        """Insert; rows whose content the tenant already has are skipped (dedupe by hash).
        Returns the inserted rows only."""
        return await self.add_many(rows, unless_taken=DEDUPE_KEY)

    async def by_keys(
        self, keys: list[tuple[str | None, str]]
    ) -> dict[tuple[str | None, str], Document]:
        """Existing documents by (source, content hash), the dedupe key."""
        if not keys:
            return {}
        rows = await self.session.scalars(
            self.scoped(Document.content_hash.in_({h for _, h in keys}))
        )
        wanted = set(keys)
        return {(r.source, r.content_hash): r for r in rows if (r.source, r.content_hash) in wanted}

    async def list(
        self,
        *,
        cursor: str | None,
        limit: int,
        tag: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> tuple[list[Document], str | None]:
        return await self.page(
            *([any_(Document.tags) == tag] if tag else []),
            cursor=cursor,
            limit=limit,
            index_status=index_status,
        )
