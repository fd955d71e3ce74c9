"""/v1/admin/keys: a tenant's admins issue, list and revoke its API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit import log as audit
from myaiserv.auth.keys import SCOPES
from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.auth.service import TenantService
from myaiserv.db.models import ApiKey
from myaiserv.kit.deps import client_ip

KeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Scope = Annotated[str, msgspec.Meta(pattern=f"^({'|'.join(SCOPES)})$")]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: KeyName
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=3)]
    expires_at: datetime | None = None


class KeyOut(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class IssuedKeyOut(KeyOut, kw_only=True):
    key: str  # shown once


class KeyList(msgspec.Struct):
    items: list[KeyOut]


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


async def provide_tenant_service(
    db_session: AsyncSession, principal: Principal, request: Request[Any, Any, Any]
) -> TenantService:
    return TenantService(db_session, actor=audit.actor_of(principal), ip=client_ip(request))


class KeyController(Controller):
    path = "/v1/admin/keys"
    tags = ["admin"]  # noqa: RUF012
    guards = [requires("admin")]  # noqa: RUF012
    dependencies = {"service": Provide(provide_tenant_service)}  # noqa: RUF012

    @post("/", status_code=201)
    async def create(
        self, data: KeyCreate, service: NamedDependency[TenantService], principal: Principal
    ) -> IssuedKeyOut:
        """Issue a key for this tenant. The key is in this response only: only its hash
        is stored."""
        issued = await service.create_key_for(
            principal.tenant_id, scopes=data.scopes, key_name=data.name, expires_at=data.expires_at
        )
        return IssuedKeyOut(
            id=issued.key_id,
            name=issued.name,
            prefix=issued.prefix,
            scopes=issued.scopes,
            created_at=issued.created_at,
            expires_at=issued.expires_at,
            revoked_at=None,
            key=issued.plaintext,
        )

    @get("/")
    async def list_keys(
        self, service: NamedDependency[TenantService], principal: Principal
    ) -> KeyList:
        """This tenant's keys (never the keys themselves), oldest first."""
        return KeyList(items=[key_out(r) for r in await service.list_keys(principal.tenant_id)])

    @delete("/{key_id:uuid}", status_code=200)
    async def revoke(
        self, key_id: UUID, service: NamedDependency[TenantService], principal: Principal
    ) -> KeyOut:
        """Revoke a key: refused from the next request on, on every instance."""
        return key_out(await service.revoke(principal.tenant_id, key_id))
