"""/v1/usage: today's LLM usage of the caller's tenant against its quotas."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from litestar import Controller, get
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.quotas.service import QuotaService, seconds_to_reset
from myaiserv.resources import Resources


def provide_quota_service(resources: Resources, principal: Principal) -> QuotaService:
    settings = resources.settings
    return QuotaService(
        resources.redis, settings.redis.namespace, settings.quotas, principal.tenant_id
    )


class UsageOut(msgspec.Struct, kw_only=True):
    day: str
    tokens: int
    cost_usd: float
    daily_token_quota: int | None  # None: unlimited
    daily_cost_quota_usd: float | None
    resets_in_s: int


async def usage_report(
    quotas: QuotaService, db_session: AsyncSession, now: datetime | None = None
) -> UsageOut:
    """Today's (UTC) usage against the quotas: what /v1/usage answers and the console's
    usage page shows."""
    now = now or datetime.now(UTC)
    limits = await quotas.limits(db_session)
    used = await quotas.usage_today(db_session, now)
    return UsageOut(
        day=now.date().isoformat(),
        tokens=used.tokens,
        cost_usd=round(used.cost_usd, 8),
        daily_token_quota=limits.daily_tokens or None,
        daily_cost_quota_usd=limits.daily_cost_usd or None,
        resets_in_s=seconds_to_reset(now),
    )


class UsageController(Controller):
    path = "/v1/usage"
    tags = ["usage"]  # noqa: RUF012
    dependencies = {"quotas": Provide(provide_quota_service, sync_to_thread=False)}  # noqa: RUF012

    @get("/", guards=[requires("read")])
    async def usage(self, quotas: QuotaService, db_session: AsyncSession) -> UsageOut:
        """Tokens and cost of this tenant's chat calls today (UTC), and its quotas."""
        return await usage_report(quotas, db_session)
