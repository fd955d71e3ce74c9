"""Failed authentications throttled per client address and per key prefix, counted in
Redis (every instance shares the counts; nothing is kept in a web process).

Each refused key counts one against its address and, when it has one, its prefix, in fixed
one-minute windows (``ratelimit.count_in_window``); a request without any key does not
count (it guesses nothing). Past its limit:

- an address is refused with a 429 and ``Retry-After`` until its window ends, before its
  key is looked up: a flood costs one Redis read per request, not a database query;
- a prefix's wrong keys get a 429 instead of a 401, while its right key still works, so
  nobody can lock a tenant out by guessing at its (not secret) prefix. Keys are 32
  random bytes: the limit is against floods and noise, not a search that could succeed.

The failure that reaches a limit is audited once, with the count: a flood is one record
per window per address or prefix, not one per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from myaiserv import metrics
from myaiserv.auth.ratelimit import RateLimitedError, count_in_window, read_window
from myaiserv.config import RateLimitSettings
from myaiserv.errors import DependencyUnavailableError
from myaiserv.logging import get_logger

log = get_logger(__name__)

Scope = Literal["address", "prefix"]


@dataclass(frozen=True)
class Tripped:
    """A limit this failure reached: audit it (once per window)."""

    scope: Scope
    limit: int


@dataclass(frozen=True)
class Counted:
    tripped: list[Tripped]
    refusal: RateLimitedError | None  # the 429 to answer instead of a 401


def _refusal(scope: Scope, reset: int) -> RateLimitedError:
    metrics.AUTH_THROTTLED.labels(scope).inc()
    return RateLimitedError(
        f"too many failed authentications from this {scope}; retry in {reset} s",
        headers={"Retry-After": str(reset)},
    )


class AuthThrottle:
    def __init__(self, redis: Redis, namespace: str, settings: RateLimitSettings) -> None:
        self.redis = redis
        self.namespace = namespace
        self.settings = settings

    def _counters(self, ip: str, prefix: str | None) -> list[tuple[Scope, str, int]]:
        limits = self.settings
        counters: list[tuple[Scope, str, int]] = [
            ("address", f"{self.namespace}:authfail:address:{ip}", limits.auth_failures_per_address)
        ]
        if prefix is not None:
            name = f"{self.namespace}:authfail:prefix:{prefix}"
            counters.append(("prefix", name, limits.auth_failures_per_prefix))
        return [c for c in counters if c[2] > 0]

    async def check_address(self, ip: str) -> None:
        """Raise a 429 if ``ip`` is past its limit this window."""
        counters = self._counters(ip, None)
        if not counters:
            return
        try:
            (count,), reset = await read_window(self.redis, [counters[0][1]])
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return
        if count >= counters[0][2]:
            raise _refusal("address", reset)

    async def failed(self, ip: str, prefix: str | None) -> Counted:
        """Count a refused key: the limits it has just reached, and the 429 to answer if
        its prefix was already past its limit."""
        counters = self._counters(ip, prefix)
        if not counters:
            return Counted([], None)
        try:
            counts, reset = await count_in_window(self.redis, [c[1] for c in counters])
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return Counted([], None)
        tripped, refusal = [], None
        for (scope, _, limit), count in zip(counters, counts, strict=True):
            if count == limit:
                tripped.append(Tripped(scope, limit))
            elif count > limit and scope == "prefix":
                refusal = _refusal(scope, reset)
        return Counted(tripped, refusal)

    def _unavailable(self, exc: Exception) -> None:
        if not self.settings.fail_open:
            raise DependencyUnavailableError(
                "redis", "failed authentications cannot be counted"
            ) from exc
        log.warning("auth throttle unavailable; not throttling", error=str(exc)[:200])
