"""Authentication for /v1: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

The tenant always comes from the key, never from the request. Scopes are enforced per
route by ``requires(scope)`` guards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Message, Receive, Scope, Send

from myaiserv.auth import keys, ratelimit
from myaiserv.auth.principal import Principal
from myaiserv.auth.repository import ApiKeyRepository
from myaiserv.resources import Resources

RATE_LIMIT_SCOPE_KEY = "myaiserv.rate_limit"  # the verdict, for the response's headers


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    value = connection.headers.get("x-api-key")
    return value.strip() if value else None


class ApiKeyAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As the base class, and every response carries the caller's rate-limit state."""

        async def send_with_limits(message: Message) -> None:
            verdict = scope.get(RATE_LIMIT_SCOPE_KEY)
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
        plaintext = presented_key(connection)
        if not plaintext:
            raise NotAuthorizedException(
                "An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'."
            )
        prefix = keys.split_prefix(plaintext)
        if prefix is None:
            raise NotAuthorizedException("The API key is malformed.")
        resources: Resources = connection.app.state.resources
        async with resources.sessionmaker() as session:
            row = await ApiKeyRepository(session).get_by_prefix(prefix)
        now = datetime.now(UTC)
        if row is None or not keys.verify(plaintext, row.key_hash):
            raise NotAuthorizedException("The API key is not valid.")
        if row.revoked_at is not None:
            raise NotAuthorizedException("The API key has been revoked.")
        if row.expires_at is not None and row.expires_at <= now:
            raise NotAuthorizedException("The API key has expired.")
        principal = Principal(
            tenant_id=row.tenant_id,
            key_id=row.id,
            key_prefix=row.prefix,
            scopes=frozenset(row.scopes),
        )
        verdict = await ratelimit.check(
            resources.redis,
            resources.settings.es.index_prefix,
            principal,
            resources.settings.rate_limits,
        )
        if verdict is not None:
            connection.scope[RATE_LIMIT_SCOPE_KEY] = verdict  # type: ignore[literal-required]
            if not verdict.allowed:
                raise ratelimit.refusal(verdict)
        return AuthenticationResult(user=principal, auth=row.prefix)


def requires(scope: str):
    """A guard: the caller's key must carry ``scope`` (or a stronger one)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal) or not principal.allows(scope):
            raise PermissionDeniedException(f"This API key lacks the '{scope}' scope.")

    return guard
