"""/health and /ready against the real stack, including a dependency going away."""

from __future__ import annotations

import asyncio

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.stack.manager import Stack
from tests.support import eventually

pytestmark = pytest.mark.integration
DEPENDENCIES = ("elasticsearch", "postgres", "redis")


async def test_ready_when_all_dependencies_answer(client: AsyncTestClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == dict.fromkeys(
        DEPENDENCIES, "ok"
    )
    assert {name: check["breaker"] for name, check in body["checks"].items()} == dict.fromkeys(
        DEPENDENCIES, "closed"
    )
    assert response.headers["x-instance"] == "test"


async def test_health_is_liveness_only(client: AsyncTestClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("dependency", DEPENDENCIES)
async def test_ready_names_a_stopped_dependency_and_recovers(
    client: AsyncTestClient, stack: Stack, dependency: str
) -> None:
    await asyncio.to_thread(stack.stop, dependency)
    try:
        response = await client.get("/ready")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "Retry-After" in response.headers
        body = response.json()
        assert body["failing"] == [dependency]
        assert dependency in body["detail"]
        assert body["checks"][dependency]["status"] == "down"
        for other in set(DEPENDENCIES) - {dependency}:
            assert body["checks"][other]["status"] == "ok"

        health = await client.get("/health")
        assert health.status_code == 200
    finally:
        await asyncio.to_thread(stack.start, dependency)

    async def ready() -> bool:
        return (await client.get("/ready")).status_code == 200

    assert await eventually(ready), f"/ready did not recover after {dependency} came back"
