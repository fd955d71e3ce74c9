"""The SQL of backups and restores: the schema's tables and their rows, the consistency
point, and which entities to re-index after a restore."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import CursorResult, column, delete, func, literal, select, table, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from myaiserv.db.models import (
    RECORD_MODELS,
    IndexBuild,
    OutboxEvent,
)
from myaiserv.search.kinds import EntityKind

Executor = AsyncSession | AsyncConnection


class BackupRepository:
    def __init__(self, db: Executor) -> None:
        self.db = db

    async def no_statement_timeout(self) -> None:
        """Counting big tables may outlast the app's per-statement limit."""
        await self.db.execute(text("SET LOCAL statement_timeout = 0"))

    async def server_version(self) -> int:
        return int(await self.db.scalar(text("SHOW server_version_num")))

    async def export_snapshot(self) -> str:
        """This transaction's snapshot, for ``pg_dump --snapshot``: the dump and our
        counts see the same rows."""
        return str(await self.db.scalar(text("SELECT pg_export_snapshot()")))

    async def clock(self) -> tuple[datetime, datetime | None]:
        """(now, creation time of the oldest outbox row still pending)."""
        now = await self.db.scalar(select(func.clock_timestamp()))
        oldest = await self.db.scalar(select(func.min(OutboxEvent.created_at)))
        if now is None:  # clock_timestamp() is never NULL
            raise RuntimeError("the database has no clock")
        return now, oldest

    async def tables(self) -> list[str]:
        """The ordinary tables of the connection's schema (new ones included)."""
        rows = await self.db.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY 1"
            )
        )
        return [r[0] for r in rows]

    async def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        counts = {}
        for name in tables:
            counts[name] = await self.db.scalar(select(func.count()).select_from(table(name))) or 0
        return counts

    async def tables_with_rows(self, tables: Iterable[str]) -> list[str]:
        found = []
        for name in tables:
            if await self.db.scalar(select(literal(1)).select_from(table(name)).limit(1)):
                found.append(name)
        return found

    async def alembic_revision(self) -> str | None:
        if "alembic_version" not in await self.tables():
            return None
        versions = table("alembic_version", column("version_num"))
        return await self.db.scalar(select(versions.c.version_num).limit(1))

    async def changed_since(
        self, kind: EntityKind, since: datetime, *, after: UUID | None = None, limit: int = 1000
    ) -> list[tuple[UUID, UUID, int]]:
        """(id, tenant id, version) of the entities of ``kind`` changed at or after
        ``since``, by id, ``limit`` at a time after ``after``."""
        model = RECORD_MODELS[kind]
        stmt = (
            select(model.id, model.tenant_id, model.version)
            .where(model.updated_at >= since)
            .order_by(model.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(model.id > after)
        return [(r[0], r[1], int(r[2])) for r in await self.db.execute(stmt)]

    async def existing_ids(self, kind: EntityKind, ids: Iterable[UUID]) -> set[UUID]:
        model = RECORD_MODELS[kind]
        wanted = list(ids)
        if not wanted:
            return set()
        return set(await self.db.scalars(select(model.id).where(model.id.in_(wanted))))

    async def clear_index_builds(self) -> int:
        """Reindexes in flight when the dump was taken: their processes are gone, and
        their new indices were not snapshotted."""
        result = cast(CursorResult[Any], await self.db.execute(delete(IndexBuild)))
        return result.rowcount or 0
