"""Redis failover under mixed load: an API instance and an indexer behind nginx reach a
Redis primary with two replicas through three Sentinels (a group of its own, on free
ports: the stack's Redis is left alone). The primary is SIGKILLed while writes, searches
and chat run: Sentinel promotes a replica and the instance follows it without a restart.

Throughout: no 5xx but 503 with Retry-After, no dropped connection (during the switch
Redis only costs cache misses and uncounted requests). After: rate limits and the LLM
quota count on the new primary, every acknowledged write is stored and searchable, and
the killed node, restarted, serves as a replica of the new primary."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from myaiserv.config import Settings
from myaiserv.resources import Resources
from myaiserv.stack.manager import Stack
from myaiserv.stack.redis import RedisService
from myaiserv.stack.web import WebService
from tests.integration.test_faults import unhandled_errors
from tests.integration.test_indexing import assert_index_matches_database
from tests.support import make_tenant, web_tier
from tooling.failover import first_counted, kill_primary, sentinel_group, wait_for_promotion
from tooling.mixed import MixedLoad, reconcile

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = 1


@pytest.fixture(scope="module")
def group() -> Iterator[RedisService]:
    # Not under pytest's own temporary folder: the servers run as another user (as root),
    # and other sessions prune and re-protect that folder.
    root = Path(tempfile.mkdtemp(prefix="myaiserv-sentinel-"))
    try:
        with sentinel_group(root) as redis:
            yield redis
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def web(
    stack: Stack,
    settings: Settings,
    resources: Resources,
    group: RedisService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebService]:
    service = web_tier(
        stack,
        settings.model_copy(update={"redis_url": group.config.url(REDIS_DB)}),
        tmp_path_factory.mktemp("failover"),
        1,
        # Counted, never reached: the counters must survive the failover.
        MYAISERV_RATE_LIMITS__PER_KEY_PER_MINUTE="1000000",
        MYAISERV_RATE_LIMITS__PER_TENANT_PER_MINUTE="1000000",
        MYAISERV_LLM__RATE_LIMIT_PER_MINUTE="0",
        MYAISERV_QUOTAS__DAILY_TOKENS="1000000000",
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()


def redis_warnings(web: WebService) -> list[str]:
    """What the instance logged about Redis (to name the cause when a request went
    uncounted)."""
    return [
        line[:500]
        for log in sorted(web.root.glob("web-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "redis" in line.lower() and '"warning"' in line
    ][-20:]


async def _counters(redis: Redis, namespace: str, tenant: str) -> tuple[dict[str, int], int]:
    """(requests counted for the tenant in each live window, LLM tokens counted today)."""
    names = [key async for key in redis.scan_iter(f"{namespace}:rl:tenant:{tenant}:*")]
    values = await redis.mget(names) if names else []
    requests = {n.decode(): int(v) for n, v in zip(names, values, strict=True) if v is not None}
    day = datetime.now(UTC).strftime("%Y%m%d")
    tokens = await redis.hget(f"{namespace}:usage:{tenant}:{day}", "tokens")
    return requests, int(tokens or 0)


def counted_since(before: dict[str, int], after: dict[str, int]) -> int:
    """Requests counted between two readings of the windows: a window that expired in
    between (the minute turned) counts for neither, a new one wholly."""
    return sum(count - before.get(window, 0) for window, count in after.items())


async def test_the_primary_killed_under_mixed_load_fails_over_and_loses_nothing(
    web: WebService, group: RedisService, settings: Settings, resources: Resources
) -> None:
    tenant = await make_tenant(resources, ["read", "write"])
    url = f"http://127.0.0.1:{web.web.port}"
    async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=60) as http:
        async with MixedLoad(http, writers=2, readers=2, chatters=1) as load:
            await asyncio.sleep(3)
            healthy = len(load.outcomes)
            old = await asyncio.to_thread(kill_primary, group)
            killed = time.monotonic()
            await wait_for_promotion(group, old)
            await first_counted(http, killed)
            switched = len(load.outcomes)
            await asyncio.sleep(5)  # traffic on the new primary
        new = group.master_port()
        assert new not in (None, old)

        statuses = load.statuses()
        assert load.acked, "no write was acknowledged"
        assert set(Counter(o.status for o in load.outcomes[:healthy])) <= {200, 201}
        # No 500, no bad gateway, no dropped connection; every 503 says when to retry.
        assert set(statuses) <= {200, 201, 503}, (statuses, unhandled_errors(web))
        assert all(o.retry_after for o in load.outcomes if o.status == 503)
        # On the new primary everything works again.
        assert set(load.statuses(since=switched + 10)) <= {200, 201}

        # Rate limits and the quota count on the new primary, and keep counting.
        redis = Redis(port=new, db=REDIS_DB)
        try:
            namespace, tid = settings.redis.namespace, str(tenant.id)
            requests, tokens = await _counters(redis, namespace, tid)
            assert sum(requests.values()) > 0
            assert tokens > 0
            answers = [await http.get("/v1/documents", params={"limit": 1}) for _ in range(5)]
            body = {"model": "myaiserv-rag", "messages": [{"role": "user", "content": "recall?"}]}
            answers.append(await http.post("/v1/chat/completions", json=body))
            assert [a.status_code for a in answers] == [200] * 6
            # Counted (the limiter fails open without its headers when Redis refuses).
            uncounted = [a.request.url for a in answers if "ratelimit-remaining" not in a.headers]
            assert uncounted == [], redis_warnings(web)
            after = await _counters(redis, namespace, tid)
            assert counted_since(requests, after[0]) >= 6, (requests, after, group.master_port())
            assert after[1] > tokens
        finally:
            await redis.aclose()

        result = await reconcile(http, load.acked, within_s=120)
    assert result.missing_from_database == []
    assert result.missing_from_index == []
    assert result.acknowledged == result.stored == result.indexed > 0
    assert await assert_index_matches_database(resources, tenant.id) >= result.acknowledged

    # The killed node comes back as a replica of the new primary: the group is whole.
    await asyncio.to_thread(group.start)
    assert group.running()
    assert group.master_port() == new
    assert group.role(old) == "slave"
