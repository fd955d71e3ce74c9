"""Tenants and their keys: bootstrap, key management and quotas (CLI and admin API).

Every change is written to the audit log in the same transaction; ``actor`` says who made
it ("cli", or "key:<prefix>" for an admin key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit import log as audit
from myaiserv.auth import keys
from myaiserv.auth.repository import ApiKeyRepository, TenantRepository
from myaiserv.db.models import ApiKey, Tenant
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
    created_at: datetime
    name: str = ""
    expires_at: datetime | None = None


def _check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(keys.SCOPES))
    if unknown or not scopes:
        raise InvalidInputError("scopes", f"choose from {', '.join(keys.SCOPES)}")
    return sorted(set(scopes), key=keys.SCOPES.index)


class TenantService:
    def __init__(self, session: AsyncSession, *, actor: str = audit.CLI, ip: str | None = None):
        self.session = session
        self.tenants = TenantRepository(session)
        self.keys = ApiKeyRepository(session)
        self.actor = actor
        self.ip = ip

    def _audit(self, action: str, tenant_id: UUID, target: str, **details: object) -> None:
        audit.add(
            self.session,
            action,
            actor=self.actor,
            tenant_id=tenant_id,
            target=target,
            ip=self.ip,
            details=details,
        )

    async def create_tenant(
        self, name: str, *, scopes: list[str], key_name: str = "bootstrap"
    ) -> IssuedKey:
        if await self.tenants.get_by_name(name) is not None:
            raise ConflictError(f"tenant {name!r} already exists")
        tenant = await self.tenants.add(name)
        self._audit(audit.TENANT_CREATED, tenant.id, f"tenant:{name}")
        return await self._issue(tenant.id, tenant.name, scopes=scopes, key_name=key_name)

    async def _tenant(self, name: str) -> Tenant:
        tenant = await self.tenants.get_by_name(name)
        if tenant is None:
            raise NotFoundError(f"tenant {name!r} not found")
        return tenant

    async def create_key(
        self,
        tenant_name: str,
        *,
        scopes: list[str],
        key_name: str,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        tenant = await self._tenant(tenant_name)
        return await self._issue(
            tenant.id, tenant.name, scopes=scopes, key_name=key_name, expires_at=expires_at
        )

    async def create_key_for(
        self,
        tenant_id: UUID,
        *,
        scopes: list[str],
        key_name: str,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        tenant = await self.session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFoundError("tenant not found")
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidInputError("expires_at", "must be in the future")
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
        self._audit(
            audit.KEY_CREATED,
            tenant_id,
            f"key:{new.prefix}",
            name=key_name,
            scopes=scopes,
            expires_at=expires_at.isoformat() if expires_at else None,
        )
        return IssuedKey(
            tenant_id,
            tenant_name,
            row.id,
            new.prefix,
            new.plaintext,
            scopes,
            created_at=row.created_at,
            name=key_name,
            expires_at=expires_at,
        )

    async def tenant_name(self, tenant_id: UUID) -> str:
        tenant = await self.session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFoundError("tenant not found")
        return tenant.name

    async def list_keys(self, tenant_id: UUID) -> list[ApiKey]:
        rows = await self.session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
        )
        return list(rows)

    async def revoke(self, tenant_id: UUID, key_id: UUID) -> ApiKey:
        """Revoke a key of ``tenant_id``: refused from the next request on, by every
        instance (each request reads the key's row). Idempotent."""
        row = await self.session.scalar(
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
            .with_for_update()
        )
        if row is None:
            raise NotFoundError("API key not found")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            self._audit(audit.KEY_REVOKED, tenant_id, f"key:{row.prefix}", name=row.name)
        return row

    async def revoke_by_prefix(self, prefix: str) -> ApiKey:
        row = await self.keys.get_by_prefix(prefix)
        if row is None:
            raise NotFoundError(f"no API key with prefix {prefix!r}")
        return await self.revoke(row.tenant_id, row.id)

    async def set_quota(
        self, tenant_name: str, *, daily_tokens: int | None, daily_cost_usd: float | None
    ) -> Tenant:
        """The tenant's own daily LLM quota (None: back to the deployment's default;
        0: unlimited)."""
        tenant = await self._tenant(tenant_name)
        for name, value in (("daily_tokens", daily_tokens), ("daily_cost_usd", daily_cost_usd)):
            if value is not None and value < 0:
                raise InvalidInputError(name, "must be >= 0")
        tenant.daily_token_quota = daily_tokens
        tenant.daily_cost_quota_usd = (
            Decimal(str(daily_cost_usd)) if daily_cost_usd is not None else None
        )
        self._audit(
            audit.QUOTA_SET,
            tenant.id,
            f"tenant:{tenant.name}",
            daily_tokens=daily_tokens,
            daily_cost_usd=daily_cost_usd,
        )
        return tenant
