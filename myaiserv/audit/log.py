"""Writing and reading audit events (PostgreSQL table ``audit_events``).

Events that record a change are written with the session of that change, so both commit
or neither does. Failed authentications have no transaction of their own to ride on and
can be triggered by anyone, so they are written in bulk: the first failure per client
address and reason in each minute, and one ``auth.throttled`` event when an address or a
key prefix reaches its limit of failures for the minute (``auth/throttle.py``); the
counters ``myaiserv_auth_failures_total`` and ``myaiserv_auth_throttled_total`` count
every one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myaiserv.auth.principal import Principal
from myaiserv.db.models import AuditEvent
from myaiserv.logging import get_logger

log = get_logger(__name__)

# What is recorded (``action``):
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
AUTH_FAILED = "auth.failed"
AUTH_THROTTLED = "auth.throttled"
TENANT_CREATED = "tenant.created"
QUOTA_SET = "tenant.quota_set"
PROMPT_LABEL_SET = "prompt.label_set"
PROMPT_LABEL_REMOVED = "prompt.label_removed"
SECRET_SET = "secret.set"  # noqa: S105 - an action name
SECRET_DELETED = "secret.deleted"  # noqa: S105
SECRETS_ROTATED = "secrets.rotated"
USER_CREATED = "user.created"
USER_ROLE_CHANGED = "user.role_changed"
USER_DISABLED = "user.disabled"
USER_ENABLED = "user.enabled"
USER_PASSWORD_SET = "user.password_set"  # noqa: S105 - an action name
USER_LINK_ISSUED = "user.link_issued"
LOGIN = "login.succeeded"
LOGIN_FAILED = "login.failed"
LOGIN_THROTTLED = "login.throttled"
LOGOUT = "logout"
CLI = "cli"
ANONYMOUS = "anonymous"

AUTH_FAILURE_WINDOW_S = 60
_MAX_TEXT = 300


def actor_of(principal: Principal) -> str:
    return principal.actor


def add(
    session: AsyncSession,
    action: str,
    *,
    actor: str,
    tenant_id: UUID | None,
    target: str | None = None,
    outcome: str = "success",
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Stage an event in ``session``: it commits with the change it describes."""
    session.add(
        AuditEvent(
            action=action,
            actor=actor[:100],
            tenant_id=tenant_id,
            target=target[:_MAX_TEXT] if target else None,
            outcome=outcome,
            ip=ip[:64] if ip else None,
            details=details or {},
        )
    )


class AuthFailureSampler:
    """Decides which failed authentications are written: the first per (address, reason)
    per minute, counted in Redis so every instance shares the window. Without Redis a
    per-process window applies (bounded, so a flood of addresses cannot grow it)."""

    def __init__(self, redis: Redis, prefix: str, *, local_capacity: int = 10_000) -> None:
        self.redis = redis
        self.prefix = prefix
        self._local: dict[tuple[str, str], float] = {}
        self._capacity = local_capacity

    async def first_in_window(self, ip: str, reason: str) -> bool:
        key = f"{self.prefix}:auditfail:{ip}:{reason}"
        try:
            first = await self.redis.set(key, 1, nx=True, ex=AUTH_FAILURE_WINDOW_S)
            return bool(first)
        except (RedisError, OSError):
            return self._first_locally(ip, reason)

    def _first_locally(self, ip: str, reason: str) -> bool:
        now = time.monotonic()
        seen = self._local.get((ip, reason))
        if seen is not None and now - seen < AUTH_FAILURE_WINDOW_S:
            return False
        if len(self._local) >= self._capacity:
            self._local = {k: t for k, t in self._local.items() if now - t < AUTH_FAILURE_WINDOW_S}
            if len(self._local) >= self._capacity:
                return False
        self._local[(ip, reason)] = now
        return True


async def record_auth_failure(
    sessionmaker: async_sessionmaker[AsyncSession],
    sampler: AuthFailureSampler,
    *,
    reason: str,
    ip: str | None,
    path: str,
    prefix: str | None,
    tenant_id: UUID | None,
) -> None:
    """Write a failed authentication if it is the first of its kind this minute. Never
    raises: the caller is answering 401 whatever happens here."""
    try:
        first = await sampler.first_in_window(ip or "-", reason)
    except Exception as exc:  # noqa: BLE001 - a failed sample must not fail the request
        log.warning("audit write failed", action=AUTH_FAILED, error=str(exc)[:200])
        return
    if first:
        details = {
            "reason": reason,
            "sampled": f"first per address and reason per {AUTH_FAILURE_WINDOW_S} s",
        }
        await _write_failure(
            sessionmaker, AUTH_FAILED, path, ip, prefix, tenant_id, details=details
        )


async def record_auth_throttled(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    scope: str,
    failures: int,
    ip: str | None,
    path: str,
    prefix: str | None,
    tenant_id: UUID | None,
) -> None:
    """Write that an address or key prefix reached its limit of failures this minute
    (once per window: the failure that reached it). Never raises."""
    details = {"scope": scope, "failures": failures, "window_s": AUTH_FAILURE_WINDOW_S}
    await _write_failure(sessionmaker, AUTH_THROTTLED, path, ip, prefix, tenant_id, details=details)


async def _write_failure(
    sessionmaker: async_sessionmaker[AsyncSession],
    action: str,
    path: str,
    ip: str | None,
    prefix: str | None,
    tenant_id: UUID | None,
    *,
    details: dict[str, Any],
) -> None:
    try:
        async with sessionmaker() as session, session.begin():
            add(
                session,
                action,
                actor=f"key:{prefix}" if prefix else ANONYMOUS,
                tenant_id=tenant_id,
                outcome="failure",
                target=path,
                ip=ip,
                details=details,
            )
    except Exception as exc:  # noqa: BLE001 - the caller is refusing the request anyway
        log.warning("audit write failed", action=action, error=str(exc)[:200])


@dataclass(frozen=True)
class AuditQuery:
    tenant_id: UUID | None  # None: every tenant (operators, from the CLI)
    action: str | None = None  # exact, or a prefix ending in "." ("key.")
    outcome: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 50


def _statement(query: AuditQuery) -> Select[AuditEvent]:
    stmt = select(AuditEvent)
    if query.tenant_id is not None:
        stmt = stmt.where(AuditEvent.tenant_id == query.tenant_id)
    if query.action:
        if query.action.endswith("."):
            stmt = stmt.where(AuditEvent.action.startswith(query.action, autoescape=True))
        else:
            stmt = stmt.where(AuditEvent.action == query.action)
    if query.outcome:
        stmt = stmt.where(AuditEvent.outcome == query.outcome)
    if query.actor:
        stmt = stmt.where(AuditEvent.actor == query.actor)
    if query.since:
        stmt = stmt.where(AuditEvent.created_at >= query.since)
    if query.until:
        stmt = stmt.where(AuditEvent.created_at < query.until)
    if query.before_id is not None:
        stmt = stmt.where(AuditEvent.id < query.before_id)
    return stmt.order_by(AuditEvent.id.desc()).limit(query.limit + 1)


async def find(session: AsyncSession, query: AuditQuery) -> tuple[list[AuditEvent], int | None]:
    """Newest first; the id to continue before, or None on the last page."""
    rows = list(await session.scalars(_statement(query)))
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        return rows, rows[-1].id
    return rows, None
