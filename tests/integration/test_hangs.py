"""Hung dependencies under mixed load: an API instance and an indexer behind nginx (real
processes, this session's database, Redis database and index prefix) take writes, searches
and chat while Redis, Elasticsearch and PostgreSQL in turn are SIGSTOPped (every process of
the server: it accepts connections and answers nothing) and SIGCONTinued.

Throughout: no request waits longer than its dependency's budget (from the settings the
tier runs with) plus a wide margin, traffic keeps being answered during the hang (no
pile-up behind the hung server), no 5xx but 503, every 503 says when to retry, and the
dependency's circuit breaker opens (its gauge) and closes again by itself. After recovery
every acknowledged write is in PostgreSQL and found by a search."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from myaiserv.config import Settings
from myaiserv.resources import Resources
from myaiserv.stack.manager import Stack
from myaiserv.stack.web import WebService
from tests.integration.test_faults import ALLOWED_DURING, unhandled_errors
from tests.integration.test_indexing import assert_index_matches_database
from tests.support import eventually, make_tenant, web_tier
from tooling.mixed import MixedLoad, breaker_states, inject_fault, reconcile, watch_breaker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANG_S = 12.0
# Tight budgets, so that the bounds below sit well under HANG_S: a request stuck for the
# whole hang would exceed them.
BUDGETS = {
    "MYAISERV_REDIS__SOCKET_TIMEOUT_S": "0.25",
    "MYAISERV_REDIS__CONNECT_TIMEOUT_S": "0.25",
    # The default: under load on a shared machine a search can take seconds with every
    # cache missing (a Redis hang), and it must still be answered.
    "MYAISERV_ES__SEARCH_TIMEOUT_S": "5",
    "MYAISERV_DB__COMMAND_TIMEOUT_S": "1.5",
    "MYAISERV_DB__STATEMENT_TIMEOUT_MS": "1000",
    "MYAISERV_DB__CONNECT_TIMEOUT_S": "1",
    "MYAISERV_DB__POOL_TIMEOUT_S": "1",
}
# What a request may wait on the hung dependency before its circuit opens: Redis, each of
# a request's commands (rate limits, caches: at most 8); Elasticsearch, one budget;
# PostgreSQL, each of its sessions (at most 2 before the circuit opens) waiting for a
# pooled connection, its ping, a reconnect.
REDIS_COMMANDS = 8
PG_SESSIONS = 2
# Wide: two cores shared with other work, the embedding model and nginx in the path.
MARGIN_S = 4.0


def budget_s(dependency: str) -> float:
    env = {k: float(v) for k, v in BUDGETS.items()}
    if dependency == "redis":
        per_command = (
            env["MYAISERV_REDIS__SOCKET_TIMEOUT_S"] + env["MYAISERV_REDIS__CONNECT_TIMEOUT_S"]
        )
        return REDIS_COMMANDS * per_command
    if dependency == "elasticsearch":
        return env["MYAISERV_ES__SEARCH_TIMEOUT_S"]
    per_trip = (
        env["MYAISERV_DB__POOL_TIMEOUT_S"]
        + env["MYAISERV_DB__CONNECT_TIMEOUT_S"]
        + env["MYAISERV_DB__COMMAND_TIMEOUT_S"]
    )
    return PG_SESSIONS * per_trip


def test_the_bounds_would_catch_a_request_stuck_for_the_whole_hang() -> None:
    for dependency in ALLOWED_DURING:
        assert budget_s(dependency) + MARGIN_S < HANG_S, dependency


@pytest.fixture(scope="module")
def web(stack: Stack, settings: Settings, resources, tmp_path_factory) -> Iterator[WebService]:
    service = web_tier(
        stack,
        settings,
        tmp_path_factory.mktemp("hangs"),
        1,
        MYAISERV_RATE_LIMITS__PER_KEY_PER_MINUTE="0",
        MYAISERV_RATE_LIMITS__PER_TENANT_PER_MINUTE="0",
        MYAISERV_LLM__RATE_LIMIT_PER_MINUTE="0",
        **BUDGETS,
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.mark.parametrize("dependency", ["redis", "elasticsearch", "postgres"])
async def test_a_hung_dependency_costs_a_bounded_time_and_loses_nothing(
    web: WebService, stack: Stack, resources: Resources, dependency: str
) -> None:
    tenant = await make_tenant(resources, ["read", "write"])
    url = f"http://127.0.0.1:{web.web.port}"
    async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=60) as http:

        async def closed() -> bool:
            return (await breaker_states(http)).get(dependency) == 0

        # A probe goes through once the cool-down (5 s) has passed since the last failure.
        assert await eventually(closed, within=30), await breaker_states(http)
        seen: list[int] = []
        watcher = asyncio.create_task(watch_breaker(http, dependency, seen))
        try:
            async with MixedLoad(http, writers=2, readers=2, chatters=1) as load:
                window = await inject_fault(
                    load,
                    lambda: stack.pause(dependency),
                    lambda: stack.resume(dependency),
                    outage_s=HANG_S,
                )
        finally:
            watcher.cancel()
        assert window.recovered
        healthy, hang_end = window.healthy_end, window.outage_end

        answers = load.statuses(since=0)
        assert load.acked, "no write was acknowledged"
        assert set(Counter(o.status for o in load.outcomes[:healthy])) <= {200, 201}
        # No 500s, no bad gateways, no dropped connections; every 503 says when to retry.
        assert set(answers) <= {200, 201, 503}, (answers, unhandled_errors(web))
        assert all(o.retry_after for o in load.outcomes if o.status == 503)
        during = load.outcomes[healthy:hang_end]
        for o in during:
            assert o.status in ALLOWED_DURING[dependency][o.kind], (o, dependency)
        # Bounded: no request waited on the hung server longer than its budget allows...
        slowest = max(o.seconds for o in load.outcomes)
        assert slowest < budget_s(dependency) + MARGIN_S, (dependency, slowest)
        # ...so traffic kept being answered while it hung, instead of piling up.
        assert len(during) >= 20, (dependency, Counter((o.kind, o.status) for o in during))
        if dependency != "redis":
            assert 503 in Counter(o.status for o in during)
        # The circuit opened during the hang and closed by itself afterwards.
        assert max(seen, default=0) >= 1, (dependency, seen)

        async def closed() -> bool:
            return (await breaker_states(http)).get(dependency) == 0

        # A probe goes through once the cool-down (5 s) has passed since the last failure.
        assert await eventually(closed, within=30), await breaker_states(http)

        result = await reconcile(http, load.acked, within_s=120)
    assert result.missing_from_database == []
    assert result.missing_from_index == []
    assert result.acknowledged == result.stored == result.indexed > 0
    assert await assert_index_matches_database(resources, tenant.id) >= result.acknowledged
