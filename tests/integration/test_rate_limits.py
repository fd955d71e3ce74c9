"""Request rate limits per API key and per tenant, in Redis: RateLimit headers on every
/v1 response, 429 with Retry-After over the limit, shared by every key of a tenant, held
over any 60 s (across the turn of a minute too), and Redis down handled as configured
(fail open by default, or 503)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from myaiserv.app import create_app
from myaiserv.auth.ratelimit import count_sliding
from myaiserv.auth.service import TenantService
from myaiserv.cache.client import create_redis_client
from myaiserv.config import RateLimitSettings, Settings
from myaiserv.resources import Resources
from myaiserv.stack.manager import Stack
from tests.support import TenantKey

pytestmark = pytest.mark.integration


def limited(settings: Settings, **limits) -> Settings:
    return settings.model_copy(update={"rate_limits": RateLimitSettings(**limits)})


@pytest.fixture
async def small(settings, embedder, resources) -> AsyncIterator[AsyncTestClient]:
    app = create_app(
        limited(settings, per_key_per_minute=3, per_tenant_per_minute=5), embedder=embedder
    )
    async with AsyncTestClient(app=app) as client:
        yield client


async def test_limits_per_key_and_per_tenant(
    small: AsyncTestClient, resources: Resources, tenant: TenantKey
):
    async with resources.sessionmaker() as session, session.begin():
        second = await TenantService(session).create_key(
            tenant.name, scopes=["read"], key_name="second"
        )
    key_b = {"Authorization": f"Bearer {second.plaintext}"}
    remaining = []
    for _ in range(3):
        resp = await small.get("/v1/documents", headers=tenant.headers)
        assert resp.status_code == 200
        remaining.append(int(resp.headers["ratelimit-remaining"]))
        assert resp.headers["ratelimit-policy"].endswith(";w=60")
    assert remaining == [2, 1, 0]  # the key's limit (3) is the tighter one
    over = await small.get("/v1/documents", headers=tenant.headers)
    assert over.status_code == 429
    assert over.headers["content-type"].startswith("application/problem+json")
    # Three of three this minute: they weigh 3 * (1 - g) in the next one, where one more
    # fits from g = 1/3: the rest of this minute and 20 s.
    assert 20 <= int(over.headers["retry-after"]) <= 81
    assert over.headers["ratelimit-reset"] == over.headers["retry-after"]
    assert over.headers["ratelimit-remaining"] == "0"

    # The other key has its own 3, but the tenant's 5 are shared: 3 used (the refused
    # request counted for neither limit), 2 left.
    for _ in range(2):
        assert (await small.get("/v1/documents", headers=key_b)).status_code == 200
    tenant_over = await small.get("/v1/documents", headers=key_b)
    assert tenant_over.status_code == 429 and tenant_over.headers["ratelimit-limit"] == "5"

    # Probes are never limited.
    assert (await small.get("/health")).status_code == 200


async def test_redis_down_fails_open_or_closed_as_configured(
    settings: Settings, embedder, resources: Resources, tenant: TenantKey, stack: Stack
):
    await asyncio.to_thread(stack.stop, "redis")
    try:
        for fail_open, expected in ((True, 200), (False, 503)):
            app = create_app(
                limited(settings, per_key_per_minute=3, fail_open=fail_open), embedder=embedder
            )
            async with AsyncTestClient(app=app) as client:
                statuses = {
                    (await client.get("/v1/documents", headers=tenant.headers)).status_code
                    for _ in range(5)
                }
            assert statuses == {expected}, fail_open
    finally:
        await asyncio.to_thread(stack.start, "redis")


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client of its own (the shared one may hold connections from before another
    test restarted Redis)."""
    client = create_redis_client(settings)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_limit_holds_across_the_turn_of_a_minute(redis: Redis) -> None:
    """Counted in Redis at chosen moments: a limit spent in a minute's last second is still
    spent in the next minute's first, and comes back as that minute goes on."""
    name = f"test:rl:{uuid4()}"
    minute = (time.time() // 60 + 2) * 60  # a turn of a minute ahead, not yet counted
    counted = [await count_sliding(redis, [(name, 3)], now=minute - 1 + i / 10) for i in range(4)]
    assert [allowed for allowed, _ in counted] == [True, True, True, False]
    refused = counted[-1][1][0]
    assert (refused.current, refused.previous) == (3, 0)  # a refused request does not count

    allowed, (window,) = await count_sliding(redis, [(name, 3)], now=minute + 0.5)
    assert not allowed
    assert (window.current, window.previous) == (0, 3)
    # Three from the last minute weigh 3 * (1 - g): one more fits from g = 1/3, 20 s in.
    assert window.verdict(False).reset_s == 20
    assert (await count_sliding(redis, [(name, 3)], now=minute + 19.5))[0] is False
    allowed, (window,) = await count_sliding(redis, [(name, 3)], now=minute + 20.5)
    assert allowed and (window.current, window.previous) == (1, 3)


async def test_a_request_counts_only_when_every_limit_allows_it(redis: Redis) -> None:
    now = time.time()
    key, tenant = f"test:rl:key:{uuid4()}", f"test:rl:tenant:{uuid4()}"
    for _ in range(2):
        assert (await count_sliding(redis, [(key, 5), (tenant, 2)], now=now))[0]
    allowed, (by_key, by_tenant) = await count_sliding(redis, [(key, 5), (tenant, 2)], now=now)
    assert not allowed
    assert (by_key.current, by_tenant.current) == (2, 2)
