"""Daily LLM quotas per tenant: tokens and cost of the calls our chat endpoints make,
per UTC day.

Usage is counted in Redis (one hash per tenant and day, shared by every instance) and
seeded from PostgreSQL's runs when the hash is missing (first call of the day, Redis
restarted or flushed); without Redis it is summed from PostgreSQL. A call is refused
(429 ``insufficient_quota``, ``Retry-After`` until midnight UTC) once the day's usage
has reached a quota; calls already in flight finish, so a day may end slightly over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv import metrics
from myaiserv.config import QuotaSettings
from myaiserv.db.models import Run, Tenant
from myaiserv.errors import AppError
from myaiserv.logging import get_logger

log = get_logger(__name__)

# Runs our chat endpoints record carry this in their metadata (``origin``).
ORIGIN = "myaiserv-chat"
_TTL_S = 2 * 86400

# Add to the day's counters only when they exist: a missing hash is seeded from
# PostgreSQL, which already holds the run being added.
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[1])
  redis.call('HINCRBYFLOAT', KEYS[1], 'cost', ARGV[2])
end
return 1
"""


class QuotaExceededError(AppError):
    status_code = 429
    title = "Quota exceeded"

    def __init__(self, what: str, used: float, limit: float, retry_after_s: int) -> None:
        super().__init__(
            f"this tenant's daily {what} quota is used up ({used:g} of {limit:g}); "
            "it resets at 00:00 UTC",
            extra={"code": "insufficient_quota", "quota": what},
            headers={"Retry-After": str(retry_after_s)},
        )


@dataclass(frozen=True)
class Limits:
    daily_tokens: int  # 0: unlimited
    daily_cost_usd: float  # 0: unlimited


@dataclass(frozen=True)
class Usage:
    tokens: int
    cost_usd: float


def _day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def seconds_to_reset(now: datetime) -> int:
    return max(1, int((_day(now) + timedelta(days=1) - now).total_seconds()) + 1)


class QuotaService:
    """A tenant's quotas. Reads take the caller's session (its unit of work); counting a
    call touches Redis only."""

    def __init__(
        self, redis: Redis, namespace: str, defaults: QuotaSettings, tenant_id: UUID
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.defaults = defaults
        self.tenant_id = tenant_id

    def _key(self, now: datetime) -> str:
        return f"{self.namespace}:usage:{self.tenant_id}:{_day(now):%Y%m%d}"

    async def limits(self, session: AsyncSession) -> Limits:
        tenant = await session.get(Tenant, self.tenant_id)
        tokens = tenant.daily_token_quota if tenant else None
        cost = tenant.daily_cost_quota_usd if tenant else None
        return Limits(
            daily_tokens=self.defaults.daily_tokens if tokens is None else int(tokens),
            daily_cost_usd=self.defaults.daily_cost_usd if cost is None else float(cost),
        )

    async def _from_database(self, session: AsyncSession, now: datetime) -> Usage:
        stmt = select(
            func.coalesce(func.sum(Run.total_tokens), 0), func.coalesce(func.sum(Run.cost_usd), 0)
        ).where(
            Run.tenant_id == self.tenant_id,
            Run.created_at >= _day(now),
            Run.metadata_["origin"].astext == ORIGIN,
        )
        tokens, cost = (await session.execute(stmt)).one()  # coalesced: never NULL
        return Usage(int(tokens or 0), float(cost or 0))

    async def usage_today(self, session: AsyncSession, now: datetime | None = None) -> Usage:
        now = now or datetime.now(UTC)
        key = self._key(now)
        redis = self.redis
        try:
            tokens, cost = await redis.hmget(key, ["tokens", "cost"])
            if tokens is not None and cost is not None:
                return Usage(int(tokens), float(cost))
            usage = await self._from_database(session, now)
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(key, "tokens", usage.tokens)
                pipe.hsetnx(key, "cost", repr(usage.cost_usd))
                pipe.expire(key, _TTL_S)
                await pipe.execute()
            return usage
        except (RedisError, OSError) as exc:
            log.warning("quota counters unavailable, summing runs", error=str(exc)[:200])
            return await self._from_database(session, now)

    async def check(self, session: AsyncSession) -> None:
        """Raise ``QuotaExceededError`` when a quota of today is used up."""
        limits = await self.limits(session)
        if not limits.daily_tokens and not limits.daily_cost_usd:
            return
        now = datetime.now(UTC)
        usage = await self.usage_today(session, now)
        over: tuple[str, float, float] | None = None
        if limits.daily_tokens and usage.tokens >= limits.daily_tokens:
            over = ("tokens", usage.tokens, limits.daily_tokens)
        elif limits.daily_cost_usd and usage.cost_usd >= limits.daily_cost_usd:
            over = ("cost_usd", round(usage.cost_usd, 6), limits.daily_cost_usd)
        if over is not None:
            metrics.QUOTA_REFUSALS.labels(over[0]).inc()
            raise QuotaExceededError(*over, seconds_to_reset(now))

    async def add(self, tokens: int, cost_usd: float) -> None:
        """Count a call (after its run was recorded)."""
        if tokens <= 0 and cost_usd <= 0:
            return
        try:
            await self.redis.eval(
                _ADD, 1, self._key(datetime.now(UTC)), int(tokens), repr(float(cost_usd))
            )
        except (RedisError, OSError) as exc:
            log.warning("quota counters unavailable", error=str(exc)[:200])
