"""Request rate limits per API key and per tenant, in Redis: RateLimit headers on every
/v1 response, 429 with Retry-After over the limit, shared by every key of a tenant, and
Redis down handled as configured (fail open by default, or 503)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.app import create_app
from myaiserv.auth.service import TenantService
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


async def same_window() -> None:
    """Fixed one-minute windows: start early in one, so the test stays inside it."""
    if time.time() % 60 > 45:
        await asyncio.sleep(61 - time.time() % 60)


async def test_limits_per_key_and_per_tenant(
    small: AsyncTestClient, resources: Resources, tenant: TenantKey
):
    async with resources.sessionmaker() as session, session.begin():
        second = await TenantService(session).create_key(
            tenant.name, scopes=["read"], key_name="second"
        )
    key_b = {"Authorization": f"Bearer {second.plaintext}"}
    await same_window()
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
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["ratelimit-remaining"] == "0"

    # The other key has its own 3, but the tenant's 5 are shared: 4 used, 1 left.
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
