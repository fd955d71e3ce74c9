"""/v1/admin/dead-letters: a tenant's admins see which of its writes could not be indexed,
and why (`myaiserv indexer requeue` puts them back after a fix)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.deadletters.repository import DeadLetterQuery, find
from myaiserv.kit.pagination import below, below_cursor
from myaiserv.search.kinds import EntityKind

MAX_ID = 2**63 - 1  # bigint


class DeadLetterOut(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    entity_id: UUID
    op: str
    version: int
    reason: str
    error: str
    attempts: int
    created_at: datetime


class DeadLetterPage(msgspec.Struct):
    items: list[DeadLetterOut]
    next_cursor: str | None


class DeadLetterController(Controller):
    path = "/v1/admin/dead-letters"
    tags = ["admin"]  # noqa: RUF012
    guards = [requires("admin")]  # noqa: RUF012

    @get("/")
    async def list_dead_letters(
        self,
        db_session: AsyncSession,
        principal: Principal,
        kind: EntityKind | None = None,
        entity_id: UUID | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> DeadLetterPage:
        """This tenant's writes that failed for good, newest first, with the reason
        (optionally of one ``kind`` or one record, ``entity_id``); pass ``next_cursor``
        back as ``cursor``. The records themselves say ``index_status: failed``."""
        rows, next_id = await find(
            db_session,
            DeadLetterQuery(
                tenant_id=principal.tenant_id,
                kind=kind,
                entity_id=entity_id,
                before_id=below(cursor, high=MAX_ID),
                limit=limit,
            ),
        )
        return DeadLetterPage(
            items=[
                DeadLetterOut(
                    id=r.id,
                    kind=r.kind,
                    entity_id=r.entity_id,
                    op=r.op,
                    version=r.version,
                    reason=r.reason,
                    error=r.error,
                    attempts=r.attempts,
                    created_at=r.created_at,
                )
                for r in rows
            ],
            next_cursor=below_cursor(next_id) if next_id is not None else None,
        )
