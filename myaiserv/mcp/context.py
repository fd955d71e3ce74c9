"""Who calls an MCP handler, and with what: the ``Principal`` the authentication
middleware put on the HTTP request (the tenant comes from the key, never from arguments)
and the process's ``Resources`` (the MCP server's lifespan state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar.exceptions import NotAuthorizedException
from mcp.server.context import ServerRequestContext
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import check_scope
from myaiserv.auth.principal import Principal
from myaiserv.resources import Resources

Ctx = ServerRequestContext[Resources, Any]


@dataclass(frozen=True)
class Caller:
    principal: Principal
    resources: Resources
    ip: str | None

    @property
    def tenant_id(self) -> UUID:
        return self.principal.tenant_id

    def require(self, scope: str) -> None:
        """403 (an MCP forbidden error) unless the key carries ``scope``."""
        check_scope(self.principal, scope)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction, committed when the block ends (before the answer is sent),
        rolled back if it raised: services never commit."""
        async with self.resources.sessionmaker() as session, session.begin():
            yield session


def caller_of(ctx: Ctx) -> Caller:
    request = ctx.request
    scope = getattr(request, "scope", None) or {}
    principal = scope.get("user")
    if not isinstance(principal, Principal):  # /mcp is behind the middleware: never here
        raise NotAuthorizedException("An API key is required.")
    client = scope.get("client")
    return Caller(principal, ctx.lifespan_context, client[0] if client else None)
