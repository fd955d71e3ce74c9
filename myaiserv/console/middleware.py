"""Who is using the console: the session cookie names a session in Redis, the session
names a user, and the user's row in PostgreSQL (read on every request, so a role change
or a disabled user takes effect at once on every instance) gives the tenant and role.

The result is the same ``Principal`` an API key gives, with the role's scopes, so every
page is authorised by the API's guards and isolated by the same tenant filter. Requests
count against the user's rate limit as a key's do. Without a live session a page
redirects to the login page; any other request is a 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from myaiserv.auth import ratelimit
from myaiserv.auth.principal import Principal
from myaiserv.console.login import sessions_of
from myaiserv.console.sessions import COOKIE
from myaiserv.resources import Resources
from myaiserv.users.repository import UserRepository
from myaiserv.users.service import ROLE_SCOPES


@dataclass(frozen=True)
class ConsoleAuth:
    """``request.auth`` on console pages: the session, for logging out."""

    session_id: str
    role: str


class LoginRequiredError(NotAuthorizedException):
    """No live session: pages answer with a redirect to ``login_url``."""

    def __init__(self, login_url: str) -> None:
        super().__init__("Log in to use the console.")
        self.login_url = login_url


class SessionAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        resources = cast(Resources, connection.app.state.resources)
        session_id = connection.cookies.get(COOKIE)
        session = await sessions_of(resources).get(session_id) if session_id else None
        user = None
        if session is not None:
            async with resources.sessionmaker() as db:
                user = await UserRepository(db).get(session.user_id)
        if session_id is None or user is None or user.disabled_at is not None:
            target = connection.url.path
            if connection.url.query:
                target += f"?{connection.url.query}"
            raise LoginRequiredError(f"/console/login?next={quote(target, safe='/')}")
        principal = Principal(
            tenant_id=user.tenant_id,
            scopes=ROLE_SCOPES[user.role],
            user_id=user.id,
            email=user.email,
        )
        verdict = await ratelimit.check(
            resources.redis,
            resources.settings.redis.namespace,
            principal,
            resources.settings.rate_limits,
        )
        if verdict is not None and not verdict.allowed:
            raise ratelimit.refusal(verdict)
        return AuthenticationResult(user=principal, auth=ConsoleAuth(session_id, user.role))
