"""Request rate limits per API key and per tenant, counted in Redis so that every
instance shares them.

Fixed one-minute windows: one ``INCR`` per counter in a MULTI/EXEC (atomic), the key
expiring with its window. Every /v1 response says where the caller stands
(``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``, ``RateLimit-Policy``,
after the IETF draft); over the limit is a 429 with ``Retry-After``. The tighter of the
two limits is the one reported. Redis down: no limits (``fail_open``, the default) or a
503, as configured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from myaiserv.auth.principal import Principal
from myaiserv.config import RateLimitSettings
from myaiserv.errors import AppError, DependencyUnavailableError
from myaiserv.logging import get_logger

log = get_logger(__name__)

WINDOW_S = 60


@dataclass(frozen=True)
class Verdict:
    limit: int
    remaining: int
    reset_s: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w={WINDOW_S}",
        }


class RateLimitedError(AppError):
    status_code = 429
    title = "Too many requests"


def current_window() -> tuple[int, int]:
    """The current window's number (counter keys end in it) and the seconds until it ends."""
    now = time.time()
    window = int(now // WINDOW_S)
    return window, max(1, int((window + 1) * WINDOW_S - now))


async def count_in_window(redis: Redis, names: list[str]) -> tuple[list[int], int]:
    """Count one hit on each named counter in the current window, atomically; returns the
    counts and the seconds until the window ends. Raises RedisError/OSError."""
    window, reset = current_window()
    async with redis.pipeline(transaction=True) as pipe:
        for name in names:
            key = f"{name}:{window}"
            pipe.incr(key)
            pipe.expire(key, WINDOW_S * 2)
        counts = (await pipe.execute())[::2]
    return counts, reset


async def read_window(redis: Redis, names: list[str]) -> tuple[list[int], int]:
    """The named counters' counts in the current window (0 where unset), without counting.
    Raises RedisError/OSError."""
    window, reset = current_window()
    values = await redis.mget([f"{name}:{window}" for name in names])
    return [int(v) if v is not None else 0 for v in values], reset


async def check(
    redis: Redis, prefix: str, principal: Principal, settings: RateLimitSettings
) -> Verdict | None:
    """Count this request; None when no limit applies (or Redis is down and fail-open)."""
    limits = [
        (principal.subject, settings.per_key_per_minute),
        (f"tenant:{principal.tenant_id}", settings.per_tenant_per_minute),
    ]
    limits = [(name, limit) for name, limit in limits if limit > 0]
    if not limits:
        return None
    try:
        counts, reset = await count_in_window(redis, [f"{prefix}:rl:{name}" for name, _ in limits])
    except (RedisError, OSError) as exc:
        if settings.fail_open:
            log.warning("rate limiter unavailable; not limiting", error=str(exc)[:200])
            return None
        raise DependencyUnavailableError("redis", "rate limits cannot be checked") from exc
    verdicts = [
        Verdict(limit, max(0, limit - count), reset, count <= limit)
        for (_, limit), count in zip(limits, counts, strict=True)
    ]
    refused = [v for v in verdicts if not v.allowed]
    return refused[0] if refused else min(verdicts, key=lambda v: v.remaining)


def refusal(verdict: Verdict) -> RateLimitedError:
    return RateLimitedError(
        f"rate limit of {verdict.limit} requests per minute reached; retry in {verdict.reset_s} s",
        headers={"Retry-After": str(verdict.reset_s), **verdict.headers()},
    )
