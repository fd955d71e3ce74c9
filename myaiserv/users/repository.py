"""Users and their one-time password links in PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import PasswordToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def get_in_tenant(self, tenant_id: UUID, user_id: UUID) -> User | None:
        return await self.session.scalar(
            select(User).where(User.id == user_id, User.tenant_id == tenant_id)
        )

    async def get_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email))

    async def list_for_tenant(self, tenant_id: UUID) -> list[User]:
        rows = await self.session.scalars(
            select(User).where(User.tenant_id == tenant_id).order_by(User.email)
        )
        return list(rows)

    async def any(self) -> bool:
        """Whether any user exists, in any tenant (a fresh installation has none)."""
        return (await self.session.scalar(select(User.id).limit(1))) is not None

    async def count_admins(self, tenant_id: UUID) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                User.tenant_id == tenant_id, User.role == "admin", User.disabled_at.is_(None)
            )
        )
        return int(count or 0)

    async def add(self, tenant_id: UUID, email: str, role: str) -> User:
        user = User(tenant_id=tenant_id, email=email, role=role)
        self.session.add(user)
        await self.session.flush()
        return user


class PasswordTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def issue(self, user_id: UUID, token_hash: str, expires_at: datetime) -> None:
        """A new link ends the user's older unused ones."""
        await self.end_all(user_id, at=func.now())
        self.session.add(
            PasswordToken(token_hash=token_hash, user_id=user_id, expires_at=expires_at)
        )
        await self.session.flush()

    async def claim(self, token_hash: str) -> PasswordToken | None:
        """The unused, unexpired token with this hash, locked and marked used."""
        token = await self.session.scalar(
            select(PasswordToken)
            .where(
                PasswordToken.token_hash == token_hash,
                PasswordToken.used_at.is_(None),
                PasswordToken.expires_at > func.now(),
            )
            .with_for_update()
        )
        if token is not None:
            token.used_at = func.now()
            await self.session.flush()
        return token

    async def end_all(self, user_id: UUID, *, at: object) -> None:
        await self.session.execute(
            update(PasswordToken)
            .where(PasswordToken.user_id == user_id, PasswordToken.used_at.is_(None))
            .values(used_at=at)
        )
