"""The SQLAlchemy async engine (asyncpg), created per process from settings.

Every wait on PostgreSQL is bounded, so a hung server (connections accepted, nothing
answered) costs a request a known time: connecting (``connect_timeout_s``), each answer
(``command_timeout_s``, client side), a pooled connection when all are busy
(``pool_timeout_s``). Sessions go through PostgreSQL's circuit breaker: while it is open a
session refuses at once (503 with Retry-After) instead of queueing behind the timeouts.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

import sqlalchemy.exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from myaiserv.config import Settings
from myaiserv.errors import DependencyUnavailableError
from myaiserv.kit.breaker import CircuitBreaker


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db.pool_size,
        max_overflow=settings.db.max_overflow,
        pool_timeout=settings.db.pool_timeout_s,
        # A server restart leaves dead connections in the pool; test them before use.
        pool_pre_ping=True,
        echo=settings.db.echo,
        connect_args={
            "timeout": settings.db.connect_timeout_s,
            "command_timeout": settings.db.command_timeout_s,
            "server_settings": {
                "application_name": "myaiserv",
                "statement_timeout": str(settings.db.statement_timeout_ms),
            },
        },
    )


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means PostgreSQL did not answer (or cannot serve): connection-level
    errors, a pool or client timeout, connection-class SQLSTATEs (08, 57)."""
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError | OSError):  # TimeoutError is an OSError
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        code = getattr(exc.orig, "sqlstate", None) or ""
        return code[:2] in ("08", "57") or exc.connection_invalidated
    return False


class GuardedSession(AsyncSession):
    """A session that asks PostgreSQL's breaker first and tells it how the session ended."""

    def __init__(self, *args: Any, breaker: CircuitBreaker | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.breaker = breaker

    async def __aenter__(self) -> GuardedSession:
        if self.breaker is not None and not self.breaker.allow():
            raise DependencyUnavailableError(
                "postgres",
                "postgres is not answering; requests are refused until it does",
                retry_after_s=max(1, math.ceil(self.breaker.retry_after_s)),
            )
        return self

    async def __aexit__(
        self,
        type_: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        except Exception as exc:
            self._record(exc)
            raise
        self._record(value)

    def _record(self, ended_by: BaseException | None) -> None:
        if self.breaker is None:
            return
        if ended_by is not None and unavailable(ended_by):
            self.breaker.record_failure()
        elif ended_by is None or isinstance(ended_by, Exception):
            self.breaker.record_success()  # it answered (a cancellation tells nothing)


def create_sessionmaker(
    engine: AsyncEngine, breaker: CircuitBreaker | None = None
) -> async_sessionmaker[AsyncSession]:
    """``breaker``: PostgreSQL's circuit breaker (the process's); None: none."""
    return async_sessionmaker(
        engine, class_=GuardedSession, expire_on_commit=False, breaker=breaker
    )
