"""Console users: invitations and one-time password links, password checks, roles, and
disabling. Every change is audited in its own transaction, as key changes are.

A role is a set of the API's scopes, so a session is authorised by the same guards as a
key: viewer ~ read, editor ~ write, admin ~ admin.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from uuid import UUID

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit import log as audit
from myaiserv.auth.repository import TenantRepository
from myaiserv.auth.service import IssuedKey, TenantService
from myaiserv.config import ConsoleSettings
from myaiserv.db.models import User
from myaiserv.errors import ConflictError, NotFoundError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.users import passwords
from myaiserv.users.repository import PasswordTokenRepository, UserRepository

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "editor": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}
# Enough to catch typing mistakes; the one-time link proves the address.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidInputError("email", "is not an email address")
    return email


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidInputError("role", f"choose from {', '.join(ROLES)}")
    return role


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class PasswordLink:
    user: User
    url: str  # shown once, only its hash is stored
    expires_at: datetime


@dataclass(frozen=True)
class FirstAdmin:
    link: PasswordLink
    key: IssuedKey | None  # the tenant's first API key, when the tenant was created too


class UserService:
    def __init__(
        self,
        session: AsyncSession,
        settings: ConsoleSettings,
        *,
        actor: str = audit.CLI,
        ip: str | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.users = UserRepository(session)
        self.tokens = PasswordTokenRepository(session)
        self.actor = actor
        self.ip = ip

    def _audit(
        self, action: str, user: User, *, actor: str | None = None, **details: object
    ) -> None:
        audit.add(
            self.session,
            action,
            actor=actor or self.actor,
            tenant_id=user.tenant_id,
            target=f"user:{user.email}",
            ip=self.ip,
            details=details,
        )

    async def create_in(self, tenant_name: str, email: str, role: str) -> PasswordLink:
        """For the CLI: the tenant by name."""
        tenant = await TenantRepository(self.session).get_by_name(tenant_name)
        if tenant is None:
            raise NotFoundError(f"tenant {tenant_name!r} not found")
        return await self.invite(tenant.id, email, role)

    async def first_admin(
        self, tenant_name: str, email: str, *, scopes: list[str]
    ) -> FirstAdmin | None:
        """A fresh installation's first admin (and its tenant, with a first key of
        ``scopes``, if there is no such tenant yet); None once any user exists, so running
        it again changes nothing."""
        if await self.users.any():
            return None
        tenant = await TenantRepository(self.session).get_by_name(tenant_name)
        key = None
        if tenant is None:
            key = await TenantService(self.session, actor=self.actor).create_tenant(
                tenant_name, scopes=scopes
            )
            tenant_id = key.tenant_id
        else:
            tenant_id = tenant.id
        return FirstAdmin(await self.invite(tenant_id, email, "admin"), key)

    async def invite(self, tenant_id: UUID, email: str, role: str) -> PasswordLink:
        """A new user without a password, and the link that sets it."""
        email, role = normalise_email(email), check_role(role)
        if await self.users.get_by_email(email) is not None:
            raise ConflictError(f"a user with email {email!r} already exists")
        user = await self.users.add(tenant_id, email, role)
        self._audit(audit.USER_CREATED, user, role=role)
        return await self._link(user)

    async def reissue_link(self, tenant_id: UUID, user_id: UUID) -> PasswordLink:
        """A fresh one-time link (a lost invitation, a forgotten password)."""
        user = await self._user(tenant_id, user_id)
        return await self._link(user)

    async def _link(self, user: User) -> PasswordLink:
        token = secrets.token_urlsafe(32)
        expires_at = datetime.now(UTC) + timedelta(seconds=self.settings.password_link_ttl_s)
        await self.tokens.issue(user.id, _token_hash(token), expires_at)
        self._audit(audit.USER_LINK_ISSUED, user, expires_at=expires_at.isoformat())
        base = self.settings.public_url.rstrip("/")
        return PasswordLink(user, f"{base}/console/set-password?token={token}", expires_at)

    async def set_password(self, token: str, password: str) -> User:
        """Use a one-time link: the password is set and the link ends."""
        problem = passwords.check_policy(password)
        if problem is not None:
            raise InvalidInputError("password", problem)
        claimed = await self.tokens.claim(_token_hash(token))
        user = await self.users.get(claimed.user_id) if claimed is not None else None
        if user is None or user.disabled_at is not None:
            raise InvalidInputError("token", "this link is not valid any more: ask for a new one")
        user.password_hash = await passwords.hash_password(password)
        self._audit(audit.USER_PASSWORD_SET, user, actor=f"user:{user.email}")
        return user

    async def authenticate(self, email: str, password: str) -> User | None:
        """The enabled user with this email and password, or None (the same time either
        way). A hash with outdated parameters is renewed."""
        user = await self.users.get_by_email(email.strip().lower())
        usable = user is not None and user.disabled_at is None
        password_hash = user.password_hash if user is not None and usable else None
        if not await passwords.verify_password(password_hash, password) or user is None:
            return None
        if password_hash is not None and passwords.needs_rehash(password_hash):
            user.password_hash = await passwords.hash_password(password)
        user.last_login_at = func.now()
        return user

    async def tenant_of(self, email: str) -> UUID | None:
        user = await self.users.get_by_email(email.strip().lower())
        return user.tenant_id if user is not None else None

    async def list(self, tenant_id: UUID) -> list[User]:
        return await self.users.list_for_tenant(tenant_id)

    async def get(self, tenant_id: UUID, user_id: UUID) -> User:
        return await self._user(tenant_id, user_id)

    async def _user(self, tenant_id: UUID, user_id: UUID) -> User:
        user = await self.users.get_in_tenant(tenant_id, user_id)
        if user is None:
            raise NotFoundError("user not found")
        return user

    async def set_role(self, tenant_id: UUID, user_id: UUID, role: str) -> User:
        user = await self._user(tenant_id, user_id)
        role = check_role(role)
        if role == user.role:
            return user
        if user.role == "admin":
            await self._keep_an_admin(user)
        before, user.role = user.role, role
        self._audit(audit.USER_ROLE_CHANGED, user, before=before, after=role)
        return user

    async def set_disabled(self, tenant_id: UUID, user_id: UUID, disabled: bool) -> User:
        """Disable (its sessions are ended by the caller) or enable a user."""
        user = await self._user(tenant_id, user_id)
        if disabled and user.disabled_at is None:
            if user.role == "admin":
                await self._keep_an_admin(user)
            user.disabled_at = datetime.now(UTC)
            await self.tokens.end_all(user.id, at=func.now())
            self._audit(audit.USER_DISABLED, user)
        elif not disabled and user.disabled_at is not None:
            user.disabled_at = None
            self._audit(audit.USER_ENABLED, user)
        return user

    async def _keep_an_admin(self, user: User) -> None:
        if user.disabled_at is None and await self.users.count_admins(user.tenant_id) <= 1:
            raise ConflictError("the tenant's last admin cannot be demoted or disabled")
