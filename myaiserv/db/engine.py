"""The SQLAlchemy async engine (asyncpg), created per process from settings."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from myaiserv.config import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db.pool_size,
        max_overflow=settings.db.max_overflow,
        # A server restart leaves dead connections in the pool; test them before use.
        pool_pre_ping=True,
        echo=settings.db.echo,
        connect_args={
            "timeout": settings.db.connect_timeout_s,
            "server_settings": {
                "application_name": "myaiserv",
                "statement_timeout": str(settings.db.statement_timeout_ms),
            },
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
