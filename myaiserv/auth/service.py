"""Tenants and their keys: bootstrap and key management (used by the CLI and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth import keys
from myaiserv.auth.repository import ApiKeyRepository, TenantRepository
from myaiserv.errors import ConflictError, NotFoundError
from myaiserv.kit.validation import InvalidInputError


@dataclass(frozen=True)
class IssuedKey:
    tenant_id: UUID
    tenant_name: str
    key_id: UUID
    prefix: str
    plaintext: str  # shown once, never stored
    scopes: list[str]


def _check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(keys.SCOPES))
    if unknown or not scopes:
        raise InvalidInputError("scopes", f"choose from {', '.join(keys.SCOPES)}")
    return sorted(set(scopes), key=keys.SCOPES.index)


class TenantService:
    def __init__(self, session: AsyncSession) -> None:
        self.tenants = TenantRepository(session)
        self.keys = ApiKeyRepository(session)

    async def create_tenant(
        self, name: str, *, scopes: list[str], key_name: str = "bootstrap"
    ) -> IssuedKey:
        if await self.tenants.get_by_name(name) is not None:
            raise ConflictError(f"tenant {name!r} already exists")
        tenant = await self.tenants.add(name)
        return await self._issue(tenant.id, tenant.name, scopes=scopes, key_name=key_name)

    async def create_key(
        self,
        tenant_name: str,
        *,
        scopes: list[str],
        key_name: str,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        tenant = await self.tenants.get_by_name(tenant_name)
        if tenant is None:
            raise NotFoundError(f"tenant {tenant_name!r} not found")
        return await self._issue(
            tenant.id, tenant.name, scopes=scopes, key_name=key_name, expires_at=expires_at
        )

    async def _issue(
        self,
        tenant_id: UUID,
        tenant_name: str,
        *,
        scopes: list[str],
        key_name: str,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        scopes = _check_scopes(scopes)
        new = keys.generate_key()
        row = await self.keys.add(
            tenant_id, new, name=key_name, scopes=scopes, expires_at=expires_at
        )
        return IssuedKey(tenant_id, tenant_name, row.id, new.prefix, new.plaintext, scopes)
