"""Failed authentications are throttled per client address and per key prefix, in Redis,
against the real stack: a 429 with Retry-After after a burst, counted by a metric, and one
audit record per window per address or prefix instead of one per failure."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from sqlalchemy import select

from myaiserv.app import create_app
from myaiserv.auth.keys import split_prefix
from myaiserv.config import Settings
from myaiserv.db.models import AuditEvent
from myaiserv.embeddings.model import Embedder
from myaiserv.resources import Resources
from tests.support import TenantKey, make_tenant

pytestmark = pytest.mark.integration

PER_ADDRESS, PER_PREFIX = 6, 3


def throttled(scope: str) -> float:
    return REGISTRY.get_sample_value("myaiserv_auth_throttled_total", {"scope": scope}) or 0.0


@pytest.fixture
async def guarded(
    settings: Settings, embedder: Embedder, resources: Resources
) -> AsyncIterator[tuple[AsyncTestClient, str]]:
    """An app with small limits and counters of its own (a namespace no other test's app
    uses: every test client has the same address), early in a window so that the test's
    requests all fall into one."""
    namespace = f"{settings.redis.namespace}-{uuid.uuid4().hex[:6]}"
    config = settings.model_copy(
        update={
            "redis": settings.redis.model_copy(update={"namespace": namespace}),
            "rate_limits": settings.rate_limits.model_copy(
                update={
                    "auth_failures_per_address": PER_ADDRESS,
                    "auth_failures_per_prefix": PER_PREFIX,
                }
            ),
        }
    )
    if time.time() % 60 > 40:
        await asyncio.sleep(61 - time.time() % 60)
    async with AsyncTestClient(app=create_app(config, embedder=embedder)) as client:
        yield client, namespace


async def audited(resources: Resources, action: str, **where: object) -> list[AuditEvent]:
    async with resources.sessionmaker() as session:
        stmt = select(AuditEvent).where(AuditEvent.action == action)
        for column, value in where.items():
            stmt = stmt.where(getattr(AuditEvent, column) == value)
        return list(await session.scalars(stmt.order_by(AuditEvent.id)))


async def test_wrong_keys_for_one_prefix_are_throttled_but_its_right_key_still_works(
    guarded: tuple[AsyncTestClient, str], resources: Resources
) -> None:
    client, namespace = guarded
    owner: TenantKey = await make_tenant(resources)
    prefix = split_prefix(owner.key)
    wrong = {"Authorization": f"Bearer {prefix}_not-the-secret"}
    before = throttled("prefix")
    for _ in range(PER_PREFIX):
        assert (await client.get("/v1/documents", headers=wrong)).status_code == 401
    over = await client.get("/v1/documents", headers=wrong)
    assert over.status_code == 429, over.text
    assert over.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert "prefix" in over.json()["detail"]
    assert throttled("prefix") == before + 1
    # Guessing at a prefix cannot lock its tenant out.
    assert (await client.get("/v1/documents", headers=owner.headers)).status_code == 200
    # The counter is in Redis (every instance shares it), not in the web process.
    keys = [k async for k in resources.redis.scan_iter(match=f"{namespace}:authfail:prefix:*")]
    assert len(keys) == 1 and int(await resources.redis.get(keys[0])) == PER_PREFIX + 1
    # One record for the burst, the tenant's to read; the failures themselves are sampled.
    events = await audited(resources, "auth.throttled", tenant_id=owner.id)
    assert len(events) == 1
    assert events[0].details == {"scope": "prefix", "failures": PER_PREFIX, "window_s": 60}
    assert events[0].actor == f"key:{prefix}" and events[0].outcome == "failure"
    resp = await client.get(
        "/v1/admin/audit", params={"action": "auth.throttled"}, headers=owner.headers
    )
    assert [e["details"]["scope"] for e in resp.json()["items"]] == ["prefix"]


async def test_an_address_with_too_many_refused_keys_is_refused_before_any_key_is_checked(
    guarded: tuple[AsyncTestClient, str], resources: Resources, tenant: TenantKey
) -> None:
    client, _ = guarded
    before = throttled("address")
    started = time.time()
    # Different made-up prefixes each time (a prefix limit never applies), and malformed
    # keys: all count against the address; a request without a key does not.
    guesses = [f"mas_{uuid.uuid4().hex[:12]}_guess" for _ in range(PER_ADDRESS - 1)]
    for key in [*guesses, "not-our-format"]:
        assert (await client.get("/v1/documents", headers={"X-API-Key": key})).status_code == 401
    assert (await client.get("/v1/documents")).status_code == 401
    # The address is now refused whatever it sends, even a valid key, until the window ends.
    for headers in ({"X-API-Key": guesses[0]}, tenant.headers):
        over = await client.get("/v1/documents", headers=headers)
        assert over.status_code == 429, over.text
        assert 1 <= int(over.headers["retry-after"]) <= 60
    assert throttled("address") == before + 2
    events = [
        e
        for e in await audited(resources, "auth.throttled", ip="testclient")
        if e.created_at.timestamp() >= started - 1 and e.details["scope"] == "address"
    ]
    assert len(events) == 1 and events[0].details["failures"] == PER_ADDRESS
    assert events[0].tenant_id is None and events[0].actor == "anonymous"  # malformed: no prefix
