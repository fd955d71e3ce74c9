"""The API as an attacker and a fuzzer see it: a real `myaiserv serve` and indexer on this
session's database, Redis database and index prefix.

- schemathesis over the OpenAPI document, authenticated, every operation: no 5xx, and
  statuses, content types and bodies as documented;
- a corpus of hostile inputs in every text field (and raw bodies, header injection): no
  5xx, no internals in any answer;
- two tenants with identical data, swept across every endpoint: nothing crosses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from myaiserv.config import Settings
from myaiserv.db.models import OutboxEvent
from myaiserv.evaluation.harness import local_api
from myaiserv.resources import Resources
from tests.support import eventually, make_tenant, process_env
from tooling.fuzz import run_schemathesis
from tooling.hostile import probe, seed
from tooling.isolation import two_tenant_sweep

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
async def live(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    env = {
        **process_env(settings),
        "MYAISERV_LLM__RATE_LIMIT_PER_MINUTE": "0",
    }
    async with local_api(env) as (url, _):
        yield url


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live: str, resources: Resources
) -> None:
    tenant = await make_tenant(resources)
    result = await asyncio.to_thread(run_schemathesis, live, tenant.key, max_examples=12, seed=7)
    assert result.cases > 300, result.output[-2000:]
    assert result.failures == {}, result.output[-6000:]


async def test_hostile_inputs_in_every_text_field_never_break_the_api(
    live: str, resources: Resources
) -> None:
    tenant = await make_tenant(resources)
    async with httpx.AsyncClient(base_url=live, headers=tenant.headers, timeout=120) as http:
        result = await probe(http, await seed(http))
    assert result.tried > 900
    assert result.failures == []
    # Some of it is refused (4xx) and some accepted: the corpus exercises both paths.
    assert sum(n for s, n in result.by_status.items() if 400 <= s < 500) > 100
    assert sum(n for s, n in result.by_status.items() if s in (200, 201)) > 100


async def test_two_tenants_with_identical_data_see_nothing_of_each_other(
    live: str, resources: Resources
) -> None:
    a, b = await make_tenant(resources), await make_tenant(resources)

    async def indexed() -> None:
        async def empty() -> bool:
            async with resources.sessionmaker() as session:
                pending = await session.scalar(
                    select(func.count(OutboxEvent.id)).where(
                        OutboxEvent.tenant_id.in_([a.id, b.id])
                    )
                )
            return pending == 0

        assert await eventually(empty, within=120)

    async with (
        httpx.AsyncClient(base_url=live, headers=a.headers, timeout=60) as http_a,
        httpx.AsyncClient(base_url=live, headers=b.headers, timeout=60) as http_b,
    ):
        result = await two_tenant_sweep(http_a, http_b, settle=indexed)
    assert result.checks > 80
    assert result.leaks == []
