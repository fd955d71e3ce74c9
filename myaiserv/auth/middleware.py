"""Authentication for /v1: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

The tenant always comes from the key, never from the request. Scopes are enforced per
route by ``requires(scope)`` guards. Refused keys are throttled per address and per key
prefix (``throttle.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Guard, Message, Receive, Scope, Send

from myaiserv import metrics
from myaiserv.audit import log as audit
from myaiserv.auth import keys, ratelimit
from myaiserv.auth.principal import Principal
from myaiserv.auth.repository import ApiKeyRepository
from myaiserv.auth.throttle import AuthThrottle
from myaiserv.kit.deps import client_ip
from myaiserv.resources import Resources

RATE_LIMIT_SCOPE_KEY = "myaiserv.rate_limit"  # the verdict, for the response's headers


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = connection.headers.get("x-api-key")
    return api_key.strip() if api_key else None


class ApiKeyAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As the base class, and every response carries the caller's rate-limit state."""

        async def send_with_limits(message: Message) -> None:
            verdict = cast(ratelimit.Verdict | None, scope.get(RATE_LIMIT_SCOPE_KEY))
            if message["type"] == "http.response.start" and verdict is not None:
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in verdict.headers().items()),
                ]
            await send(message)

        await super().__call__(scope, receive, send_with_limits)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        resources: Resources = connection.app.state.resources
        plaintext = presented_key(connection)
        if not plaintext:
            await _refuse(connection, resources, "missing", None, None)
            raise NotAuthorizedException(
                "An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'."
            )
        prefix = keys.split_prefix(plaintext)
        await _throttle(resources).check_address(client_ip(connection) or "-")
        if prefix is None:
            await _refuse(connection, resources, "malformed", None, None)
            raise NotAuthorizedException("The API key is malformed.")
        async with resources.sessionmaker() as session:
            row = await ApiKeyRepository(session).get_by_prefix(prefix)
        now = datetime.now(UTC)
        # A hash comparison happens whether or not the prefix exists, so the time taken
        # does not tell which prefixes are real.
        valid = keys.verify(plaintext, row.key_hash if row is not None else keys.DUMMY_HASH)
        if row is None or not valid:
            await _refuse(connection, resources, "invalid", prefix, row.tenant_id if row else None)
            raise NotAuthorizedException("The API key is not valid.")
        if row.revoked_at is not None:
            await _refuse(connection, resources, "revoked", prefix, row.tenant_id)
            raise NotAuthorizedException("The API key has been revoked.")
        if row.expires_at is not None and row.expires_at <= now:
            await _refuse(connection, resources, "expired", prefix, row.tenant_id)
            raise NotAuthorizedException("The API key has expired.")
        principal = Principal(
            tenant_id=row.tenant_id,
            scopes=frozenset(row.scopes),
            key_id=row.id,
            key_prefix=row.prefix,
        )
        verdict = await ratelimit.check(
            resources.redis,
            resources.settings.redis.namespace,
            principal,
            resources.settings.rate_limits,
        )
        if verdict is not None:
            connection.scope[RATE_LIMIT_SCOPE_KEY] = verdict  # type: ignore[literal-required]
            if not verdict.allowed:
                raise ratelimit.refusal(verdict)
        return AuthenticationResult(user=principal, auth=row.prefix)


def _throttle(resources: Resources) -> AuthThrottle:
    settings = resources.settings
    return AuthThrottle(resources.redis, settings.redis.namespace, settings.rate_limits)


async def _refuse(
    connection: ASGIConnection[Any, Any, Any, Any],
    resources: Resources,
    reason: str,
    prefix: str | None,
    tenant_id: UUID | None,
) -> None:
    """Count, throttle and audit a refused key (a missing one is not throttled); raises
    the 429 to answer instead of a 401 when the key's prefix is past its limit."""
    metrics.AUTH_FAILURES.labels(reason).inc()
    ip, path = client_ip(connection), connection.scope.get("path", "")
    await audit.record_auth_failure(
        resources.sessionmaker,
        resources.audit_sampler,
        reason=reason,
        ip=ip,
        path=path,
        prefix=prefix,
        tenant_id=tenant_id,
    )
    if reason == "missing":
        return
    counted = await _throttle(resources).failed(ip or "-", prefix)
    for tripped in counted.tripped:
        await audit.record_auth_throttled(
            resources.sessionmaker,
            scope=tripped.scope,
            failures=tripped.limit,
            ip=ip,
            path=path,
            prefix=prefix,
            tenant_id=tenant_id if tripped.scope == "prefix" else None,
        )
    if counted.refusal is not None:
        raise counted.refusal


def requires(scope: str) -> Guard:
    """A guard: the caller's key (or console user's role) must carry ``scope`` (or a
    stronger one)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        check_scope(connection.user, scope)

    return guard


def check_scope(principal: object, scope: str) -> None:
    """Raise the 403 of a caller whose key (or console role) lacks ``scope``; shared by the
    routes' guards and the MCP tools, so both refuse with the same words."""
    if isinstance(principal, Principal) and principal.allows(scope):
        return
    if isinstance(principal, Principal) and principal.user_id is not None:
        raise PermissionDeniedException(
            f"Your role does not allow this: it needs the '{scope}' scope (ask an admin)."
        )
    raise PermissionDeniedException(f"This API key lacks the '{scope}' scope.")
