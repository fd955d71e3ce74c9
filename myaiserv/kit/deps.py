"""Dependency providers shared by the domain controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.principal import Principal
from myaiserv.resources import Resources


def provide_resources(state: State) -> Resources:
    return cast(Resources, state.resources)


async def provide_session(state: State) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed after the handler returns (before the
    response is sent), rolled back if it raised. Services never commit."""
    async with state.resources.sessionmaker() as session, session.begin():
        yield session


def provide_principal(request: Request[Principal, Any, Any]) -> Principal:
    return request.user


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The peer's address (behind nginx, uvicorn's proxy headers make it the client's)."""
    client = connection.scope.get("client")
    return client[0] if client else None
