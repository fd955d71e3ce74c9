"""Shared fixtures. Integration tests run against the real local stack (started here if it
is not up yet), on their own database, Redis database and index prefix."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import Stack
from myaiserv.stack.postgres import TEST_DATABASE_SUFFIX

STACK_DIR = Path(os.environ.get("MYAISERV_STACK_DIR", ".stack"))
TEST_REDIS_DB = 1


@pytest.fixture(scope="session")
def stack() -> Stack:
    config = StackConfig.load(STACK_DIR) or StackConfig(dir=STACK_DIR)
    local = Stack(config)
    local.up()
    return local


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    cfg = stack.config
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=cfg.postgres.url(cfg.postgres.database + TEST_DATABASE_SUFFIX),
        redis_url=cfg.redis.url(TEST_REDIS_DB),
        es_url=cfg.elasticsearch.urls(),
        es={"index_prefix": f"test-{uuid.uuid4().hex[:8]}"},
        instance_name="test",
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within: float = 60, interval: float = 0.5
) -> bool:
    """Poll until ``probe`` is true; for recovery after a dependency restarts."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await probe():
            return True
        await asyncio.sleep(interval)
    return await probe()
