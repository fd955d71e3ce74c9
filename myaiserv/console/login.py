"""Logging in and out of the console: password check, throttling, session and audit.

Failed logins are counted per account (the email as typed, lower-cased, whether or not it
exists, so the counts do not tell which accounts do) and per client address, in Redis's
one-minute windows shared by every instance. Past either limit, logins are refused with
a 429 before the password is checked, so a guesser gets a handful of tries a minute. The
failure that reaches a limit is audited once, with the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from redis.exceptions import RedisError

from myaiserv import metrics
from myaiserv.audit import log as audit
from myaiserv.auth.ratelimit import RateLimitedError, count_in_window, read_window
from myaiserv.console.sessions import SessionStore
from myaiserv.errors import DependencyUnavailableError
from myaiserv.resources import Resources
from myaiserv.users.service import UserService


class LoginRefusedError(Exception):
    """Wrong email or password, or a disabled user: the page says only that."""


@dataclass(frozen=True)
class LoggedIn:
    session_id: str
    user_id: UUID


class LoginService:
    def __init__(self, resources: Resources, ip: str | None) -> None:
        self.resources = resources
        self.settings = resources.settings.console
        self.ip = ip or "-"
        self.sessions = sessions_of(resources)

    def _counters(self, email: str) -> list[tuple[str, str, int]]:
        namespace = self.resources.settings.redis.namespace
        return [
            (
                "address",
                f"{namespace}:loginfail:address:{self.ip}",
                self.settings.login_failures_per_address,
            ),
            (
                "account",
                f"{namespace}:loginfail:account:{email}",
                self.settings.login_failures_per_account,
            ),
        ]

    async def login(self, email: str, password: str) -> LoggedIn:
        """A new session for the user with these credentials; raises LoginRefusedError, or
        RateLimitedError when the account or address is past its limit."""
        email = email.strip().lower()[:254]
        counters = self._counters(email)
        try:
            counts, reset = await read_window(self.resources.redis, [c[1] for c in counters])
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis", "logins cannot be checked") from exc
        for (scope, _, limit), count in zip(counters, counts, strict=True):
            if count >= limit:
                metrics.AUTH_THROTTLED.labels(scope).inc()
                raise RateLimitedError(
                    f"too many failed logins for this {scope}; retry in {reset} s",
                    headers={"Retry-After": str(reset)},
                )
        async with self.resources.sessionmaker() as session, session.begin():
            users = UserService(session, self.settings, actor=f"user:{email}", ip=self.ip)
            user = await users.authenticate(email, password)
            # A failure against a real account is its tenant's to see; an unknown email's
            # names no tenant.
            tenant_id = user.tenant_id if user else await users.tenant_of(email)
            audit.add(
                session,
                audit.LOGIN if user else audit.LOGIN_FAILED,
                actor=f"user:{email}" if user else audit.ANONYMOUS,
                tenant_id=tenant_id,
                target=f"user:{email}",
                outcome="success" if user else "failure",
                ip=self.ip,
            )
            found = (user.id, user.tenant_id) if user else None
        if found is None:
            await self._failed(email, counters, tenant_id)
            raise LoginRefusedError
        return LoggedIn(await self.sessions.create(*found), found[0])

    async def _failed(
        self, email: str, counters: list[tuple[str, str, int]], tenant_id: UUID | None
    ) -> None:
        metrics.AUTH_FAILURES.labels("login").inc()
        try:
            counts, _ = await count_in_window(self.resources.redis, [c[1] for c in counters])
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis", "logins cannot be counted") from exc
        for (scope, _, limit), count in zip(counters, counts, strict=True):
            if count != limit:
                continue
            async with self.resources.sessionmaker() as session, session.begin():
                audit.add(
                    session,
                    audit.LOGIN_THROTTLED,
                    actor=audit.ANONYMOUS,
                    tenant_id=tenant_id if scope == "account" else None,
                    target=f"user:{email}",
                    outcome="failure",
                    ip=self.ip,
                    details={"scope": scope, "failures": count},
                )

    async def logout(self, session_id: str, user_id: UUID, tenant_id: UUID, email: str) -> None:
        await self.sessions.delete(session_id, user_id)
        async with self.resources.sessionmaker() as session, session.begin():
            audit.add(
                session,
                audit.LOGOUT,
                actor=f"user:{email}",
                tenant_id=tenant_id,
                target=f"user:{email}",
                ip=self.ip,
            )


def sessions_of(resources: Resources) -> SessionStore:
    settings = resources.settings
    return SessionStore(resources.redis, settings.redis.namespace, settings.console)
