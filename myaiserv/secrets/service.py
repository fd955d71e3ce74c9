"""Provider secrets as operators manage them, from the CLI or the console: store, replace,
delete and re-encrypt, each audited in the same transaction. Values go in and never come
back out (only ``SecretResolver`` decrypts, for the providers).

The secrets are the deployment's, not a tenant's: every tenant's requests to a provider
use them. The console lets only admins of the tenants named in
``console.operator_tenants`` manage them (see ``myaiserv.console.settings``).
"""

from __future__ import annotations

import re
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit import log as audit
from myaiserv.errors import ConflictError, NotFoundError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.secrets import store
from myaiserv.secrets.box import SecretBox
from myaiserv.secrets.store import SecretInfo

# What `api_key_secret` in a provider's settings can name (the column holds 100).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_VALUE = 4096


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidInputError(
            "name", "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_value(value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInputError("value", "is empty: nothing stored")
    if len(value) > MAX_VALUE or "\x00" in value:
        raise InvalidInputError("value", f"must be at most {MAX_VALUE} characters, without NUL")
    return value


class SecretService:
    """``tenant_id`` is the acting admin's tenant (its audit log shows the change), None
    for the CLI (the deployment's log)."""

    def __init__(
        self,
        session: AsyncSession,
        box: SecretBox,
        *,
        actor: str = audit.CLI,
        tenant_id: UUID | None = None,
        ip: str | None = None,
    ) -> None:
        self.session = session
        self.box = box
        self.actor = actor
        self.tenant_id = tenant_id
        self.ip = ip

    def _audit(self, action: str, target: str, **details: object) -> None:
        audit.add(
            self.session,
            action,
            actor=self.actor,
            tenant_id=self.tenant_id,
            target=target,
            ip=self.ip,
            details=details or None,
        )

    async def list(self) -> list[SecretInfo]:
        """Names, the key that encrypted each, and when each changed (never values)."""
        return await store.describe(self.session)

    async def set(self, name: str, value: str) -> bool:
        """Store or replace ``name``; True when it replaced one."""
        name, value = check_name(name), check_value(value)
        replaced = await store.put(self.session, self.box, name, value)
        self._audit(audit.SECRET_SET, f"secret:{name}", replaced=replaced)
        return replaced

    async def add(self, name: str, value: str) -> None:
        """A new secret; a name already stored is a conflict (replace it instead)."""
        name = check_name(name)
        if name in {s.name for s in await self.list()}:
            raise ConflictError(f"a secret named {name!r} already exists: replace its value")
        await self.set(name, value)

    async def replace(self, name: str, value: str) -> None:
        """A new value for a stored secret (a rotated provider key)."""
        if name not in {s.name for s in await self.list()}:
            raise NotFoundError(f"no secret named {name!r}")
        await self.set(name, value)

    async def remove(self, name: str) -> bool:
        found = await store.remove(self.session, name)
        if found:
            self._audit(audit.SECRET_DELETED, f"secret:{name}")
        return found

    async def reencrypt(self) -> tuple[int, int]:
        """Every secret under the primary key: (re-encrypted, already current)."""
        done, current = await store.rotate(self.session, self.box)
        self._audit(
            audit.SECRETS_ROTATED,
            f"key:{self.box.primary_key_id}",
            reencrypted=done,
            already_current=current,
        )
        return done, current
