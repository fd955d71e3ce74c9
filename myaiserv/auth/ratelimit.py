"""Request rate limits per API key and per tenant (and the chat limit per tenant), counted
in Redis so that every instance shares them.

Sliding windows: each counter keeps one count per minute, and a request is weighed
against the current minute's count plus the previous minute's, scaled by the part of the
previous minute still inside the last 60 s (the sliding-window counter Cloudflare
describes for its limiter). A fixed window lets a client spend its limit twice across a boundary
and forgets everything at the turn of the minute; this one does neither, for two small
counters per limit. One Lua script reads every counter of a request and counts the
request only when all of them allow it, atomically, so a refused request costs nothing
of the quota and ``Retry-After`` is when one more request fits.

Every /v1 response says where the caller stands (``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset``, ``RateLimit-Policy``, after the IETF draft);
over the limit is a 429 with ``Retry-After``. The tighter of the two limits is the one
reported. Redis down: no limits (``fail_open``, the default) or a 503, as configured.

Failed authentications and logins are throttled in fixed windows (``count_in_window``):
a count that trips once per window, for the audit log, not a quota a client plans by.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
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


# KEYS: each counter's current minute, then its previous minute. ARGV: the part of the
# current minute gone (0..1), the counters' lifetime in seconds, then each counter's limit.
# Returns whether the request was counted, then each counter's current and previous count.
_SLIDING = """
local gone = tonumber(ARGV[1])
local counts, allowed = {}, 1
for i = 1, #KEYS / 2 do
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local previous = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  counts[2 * i - 1], counts[2 * i] = current, previous
  if previous * (1 - gone) + current + 1 > tonumber(ARGV[2 + i]) then allowed = 0 end
end
if allowed == 1 then
  for i = 1, #KEYS / 2 do
    counts[2 * i - 1] = redis.call('INCR', KEYS[2 * i - 1])
    redis.call('EXPIRE', KEYS[2 * i - 1], ARGV[2])
  end
end
table.insert(counts, 1, allowed)
return counts
"""


@dataclass(frozen=True)
class Sliding:
    """One counter's sliding window at ``gone`` (the part of the current minute gone)."""

    limit: int
    current: int
    previous: int
    gone: float

    @property
    def used(self) -> float:
        return self.previous * (1 - self.gone) + self.current

    def wait_s(self) -> float:
        """Seconds until one more request fits under the limit."""
        room = self.limit - 1 - self.current
        if room >= 0:
            if self.previous <= room:
                return 0.0
            # previous * (1 - g) <= room  <=>  g >= 1 - room / previous
            return (1 - room / self.previous - self.gone) * WINDOW_S
        # Not this minute: the next one weighs this minute's count as its previous.
        until_next = (1 - self.gone) * WINDOW_S
        return until_next + max(0.0, 1 - (self.limit - 1) / self.current) * WINDOW_S

    def verdict(self, allowed: bool) -> Verdict:
        if allowed:
            # When the last request of this minute stops weighing.
            reset = (2 - self.gone) * WINDOW_S if self.current else (1 - self.gone) * WINDOW_S
        else:
            reset = self.wait_s()
        remaining = max(0, math.floor(self.limit - self.used + 1e-9))
        return Verdict(self.limit, remaining, max(1, math.ceil(reset)), allowed)


async def count_sliding(
    redis: Redis, counters: Sequence[tuple[str, int]], now: float | None = None
) -> tuple[bool, list[Sliding]]:
    """Count one request on every ``(name, limit)`` counter if each allows it, atomically;
    returns whether it was counted and each counter's window (counts after it).
    Raises RedisError/OSError."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_S)
    gone = now / WINDOW_S - window
    keys = [key for name, _ in counters for key in (f"{name}:{window}", f"{name}:{window - 1}")]
    args: list[str | int] = [repr(gone), WINDOW_S * 2, *(limit for _, limit in counters)]
    reply = await redis.eval(_SLIDING, len(keys), *keys, *args)
    allowed, counts = bool(reply[0]), [int(c) for c in reply[1:]]
    windows = [
        Sliding(limit, counts[2 * i], counts[2 * i + 1], gone)
        for i, (_, limit) in enumerate(counters)
    ]
    return allowed, windows


async def check(
    redis: Redis, prefix: str, principal: Principal, settings: RateLimitSettings
) -> Verdict | None:
    """Count this request; None when no limit applies (or Redis is down and fail-open)."""
    limits = [
        (f"{prefix}:rl:{principal.subject}", settings.per_key_per_minute),
        (f"{prefix}:rl:tenant:{principal.tenant_id}", settings.per_tenant_per_minute),
    ]
    limits = [(name, limit) for name, limit in limits if limit > 0]
    if not limits:
        return None
    try:
        allowed, windows = await count_sliding(redis, limits)
    except (RedisError, OSError) as exc:
        if settings.fail_open:
            log.warning("rate limiter unavailable; not limiting", error=str(exc)[:200])
            return None
        raise DependencyUnavailableError("redis", "rate limits cannot be checked") from exc
    if not allowed:
        # The limit that holds the request back longest.
        return max((w.verdict(False) for w in windows), key=lambda v: v.reset_s)
    return min((w.verdict(True) for w in windows), key=lambda v: v.remaining)


def refusal(verdict: Verdict) -> RateLimitedError:
    return RateLimitedError(
        f"rate limit of {verdict.limit} requests per minute reached; retry in {verdict.reset_s} s",
        headers={"Retry-After": str(verdict.reset_s), **verdict.headers()},
    )
