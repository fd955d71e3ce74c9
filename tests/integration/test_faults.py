"""Faults under mixed load: an API instance and an indexer behind nginx (real processes,
this session's database, Redis database and index prefix) take writes, searches and chat
while Redis, Elasticsearch and PostgreSQL are stopped in turn and started again.

Throughout: no 5xx but 503, every 503 says when to retry, nothing is refused that the
dependency left running could serve. After recovery: every acknowledged write is in
PostgreSQL and found by a search, and the index holds exactly what the database holds
(nothing half-written)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from myaiserv.config import Settings
from myaiserv.resources import Resources
from myaiserv.stack.manager import Stack
from myaiserv.stack.web import WebService
from tests.integration.test_indexing import assert_index_matches_database
from tests.support import make_tenant, web_tier
from tooling.mixed import MixedLoad, inject_fault, reconcile

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What each kind of request may answer while the dependency is down (besides what it
# answers when all is well): a write needs PostgreSQL only; search and chat need
# Elasticsearch; everything needs PostgreSQL (the API key is read from it).
ALLOWED_DURING = {
    "redis": {"write": {201}, "search": {200}, "chat": {200}},
    "elasticsearch": {"write": {201}, "search": {200, 503}, "chat": {200, 503}},
    "postgres": {"write": {201, 503}, "search": {200, 503}, "chat": {200, 503}},
}


def unhandled_errors(web: WebService) -> list[str]:
    """What the instances logged as unhandled (the cause of a 500), to name it on failure."""
    return [
        line[:2000]
        for log in sorted(web.root.glob("web-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if '"unhandled error"' in line
    ]


@pytest.fixture(scope="module")
def web(stack: Stack, settings: Settings, resources, tmp_path_factory) -> Iterator[WebService]:
    service = web_tier(
        stack,
        settings,
        tmp_path_factory.mktemp("faults"),
        1,
        # Failing fast, the load outruns any rate limit; limits have their own tests.
        MYAISERV_RATE_LIMITS__PER_KEY_PER_MINUTE="0",
        MYAISERV_RATE_LIMITS__PER_TENANT_PER_MINUTE="0",
        MYAISERV_LLM__RATE_LIMIT_PER_MINUTE="0",
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.mark.parametrize("dependency", ["redis", "elasticsearch", "postgres"])
async def test_a_dependency_stopped_under_mixed_load_loses_nothing(
    web: WebService, stack: Stack, resources: Resources, dependency: str
) -> None:
    tenant = await make_tenant(resources, ["read", "write"])
    url = f"http://127.0.0.1:{web.web.port}"
    async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=60) as http:
        async with MixedLoad(http, writers=2, readers=2, chatters=1) as load:
            window = await inject_fault(
                load, lambda: stack.stop(dependency), lambda: stack.start(dependency)
            )
        assert window.recovered
        healthy, outage_end = window.healthy_end, window.outage_end

        before = load.statuses(since=0)
        assert load.acked, "no write was acknowledged"
        # Before the fault everything worked.
        assert set(Counter(o.status for o in load.outcomes[:healthy])) <= {200, 201}
        # No 500s, no bad gateways, no dropped connections; every 503 says when to retry.
        assert set(before) <= {200, 201, 503}, (before, unhandled_errors(web))
        assert all(o.retry_after for o in load.outcomes if o.status == 503)
        # During the outage, only what the missing dependency explains.
        for o in load.outcomes[healthy:outage_end]:
            assert o.status in ALLOWED_DURING[dependency][o.kind], (o, dependency)
        if dependency != "redis":
            assert 503 in Counter(o.status for o in load.outcomes[healthy:outage_end])

        result = await reconcile(http, load.acked, within_s=120)
    assert result.missing_from_database == []
    assert result.missing_from_index == []
    assert result.acknowledged == result.stored == result.indexed > 0
    # Nothing half-written: the index holds exactly the database's chunks and versions.
    assert await assert_index_matches_database(resources, tenant.id) >= result.acknowledged
