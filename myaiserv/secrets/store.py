"""Stored secrets (table ``provider_secrets``): written by operators (CLI), read by the
providers through a per-process ``SecretResolver``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy.exc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myaiserv.db.models import ProviderSecret
from myaiserv.secrets.box import SecretBox, SecretsError


@dataclass(frozen=True)
class SecretInfo:
    name: str
    key_id: str
    updated_at: datetime


async def put(session: AsyncSession, box: SecretBox, name: str, value: str) -> bool:
    """Store ``value`` under ``name`` (encrypted); True when it replaced one."""
    ciphertext, kid = box.encrypt(value)
    row = await session.get(ProviderSecret, name, with_for_update=True)
    if row is None:
        session.add(ProviderSecret(name=name, ciphertext=ciphertext, key_id=kid))
        return False
    row.ciphertext, row.key_id, row.updated_at = ciphertext, kid, func.now()
    return True


async def remove(session: AsyncSession, name: str) -> bool:
    row = await session.get(ProviderSecret, name, with_for_update=True)
    if row is None:
        return False
    await session.delete(row)
    return True


async def describe(session: AsyncSession) -> list[SecretInfo]:
    rows = await session.scalars(select(ProviderSecret).order_by(ProviderSecret.name))
    return [SecretInfo(r.name, r.key_id, r.updated_at) for r in rows]


async def reveal(session: AsyncSession, box: SecretBox, name: str) -> str | None:
    row = await session.get(ProviderSecret, name)
    return None if row is None else box.decrypt(row.ciphertext)


async def rotate(session: AsyncSession, box: SecretBox) -> tuple[int, int]:
    """Re-encrypt, under the primary key, every secret another key encrypted; rows are
    locked one transaction long, readers see the old or the new ciphertext (both
    decrypt). Returns (re-encrypted, already current)."""
    rows = list(
        await session.scalars(
            select(ProviderSecret).order_by(ProviderSecret.name).with_for_update()
        )
    )
    done = 0
    for row in rows:
        if row.key_id == box.primary_key_id:
            continue
        row.ciphertext, row.key_id = box.rotate(row.ciphertext)
        row.updated_at = func.now()
        done += 1
    return done, len(rows) - done


class SecretResolver:
    """Decrypted secrets for this process, re-read every ``ttl_s`` so a changed provider
    key reaches every instance without a restart. While PostgreSQL is unreachable the last
    value read is kept."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        keys: list[str],
        *,
        ttl_s: float = 60.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._keys = keys
        self._box: SecretBox | None = None
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, str]] = {}

    def _get_box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox(self._keys)
        return self._box

    async def get(self, name: str) -> str:
        """The secret's value; raises ``SecretsError`` when it is not stored or cannot be
        decrypted."""
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            async with self._sessionmaker() as session:
                value = await reveal(session, self._get_box(), name)
        except (
            OSError,
            TimeoutError,
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.InterfaceError,
            sqlalchemy.exc.TimeoutError,
        ):
            if cached is not None:
                return cached[1]
            raise SecretsError(
                f"secret {name!r} cannot be read: PostgreSQL is unavailable"
            ) from None
        if value is None:
            self._cache.pop(name, None)
            raise SecretsError(f"no secret named {name!r} is stored (`myaiserv secrets set`)")
        self._cache[name] = (now, value)
        return value
