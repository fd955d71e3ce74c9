"""/v1/admin/audit: a tenant's admins read its audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit.log import AuditQuery, find
from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.kit.pagination import below, below_cursor

MAX_EVENT_ID = 2**63 - 1  # bigint


class AuditEventOut(msgspec.Struct, kw_only=True):
    id: int
    created_at: datetime
    actor: str
    action: str
    outcome: str
    target: str | None
    ip: str | None
    details: dict[str, Any]


class AuditPage(msgspec.Struct):
    items: list[AuditEventOut]
    next_cursor: str | None


class AuditController(Controller):
    path = "/v1/admin/audit"
    tags = ["admin"]  # noqa: RUF012
    guards = [requires("admin")]  # noqa: RUF012

    @get("/")
    async def list_events(
        self,
        db_session: AsyncSession,
        principal: Principal,
        action: Annotated[str | None, Parameter(max_length=64)] = None,
        outcome: Annotated[str | None, Parameter(pattern="^(success|failure)$")] = None,
        actor: Annotated[str | None, Parameter(max_length=100)] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """This tenant's events, newest first. ``action``: exact (``key.revoked``) or a
        family ending in a dot (``key.``); pass ``next_cursor`` back as ``cursor``."""
        before = below(cursor, high=MAX_EVENT_ID)
        rows, next_id = await find(
            db_session,
            AuditQuery(
                tenant_id=principal.tenant_id,
                action=action,
                outcome=outcome,
                actor=actor,
                since=since,
                until=until,
                before_id=before,
                limit=limit,
            ),
        )
        return AuditPage(
            items=[
                AuditEventOut(
                    id=r.id,
                    created_at=r.created_at,
                    actor=r.actor,
                    action=r.action,
                    outcome=r.outcome,
                    target=r.target,
                    ip=r.ip,
                    details=dict(r.details or {}),
                )
                for r in rows
            ],
            next_cursor=below_cursor(next_id) if next_id is not None else None,
        )
