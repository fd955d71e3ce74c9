"""Dependency providers shared by the domain controllers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.principal import Principal
from myaiserv.resources import Resources


def provide_resources(state: State) -> Resources:
    return state.resources


async def provide_session(state: State) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed after the handler returns (before the
    response is sent), rolled back if it raised. Services never commit."""
    async with state.resources.sessionmaker() as session, session.begin():
        yield session


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return request.user
