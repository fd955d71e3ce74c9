"""Shared fixtures (the helpers are in tests/support.py). Integration tests run against the
real local stack (started here if it is not up yet), on their own database, Redis database
and index prefix; every test that writes data uses a tenant of its own."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.db import migrate
from myaiserv.embeddings.model import Embedder
from myaiserv.resources import Resources, open_resources
from myaiserv.search.kinds import KINDS
from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import Stack
from myaiserv.stack.postgres import TEST_DATABASE_SUFFIX
from tests.support import (
    ConsoleUser,
    TenantKey,
    admin_sql,
    console_login,
    make_tenant,
    make_user,
)

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
    if cfg.elasticsearch.security or cfg.redis.password:
        pytest.fail(
            f"the stack in {cfg.dir} is secured (`stack up --secure`): the tests run on an "
            "unsecured one (`stack down`, `stack up --no-secure`); test_secured_stack.py "
            "starts a secured pair of its own"
        )
    tag = uuid.uuid4().hex[:8]
    # A database of this session's own: test sessions may run side by side.
    database = f"{cfg.postgres.database}{TEST_DATABASE_SUFFIX}_{uuid.uuid4().hex[:8]}"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=cfg.postgres.url(database),
        redis_url=cfg.redis.url(TEST_REDIS_DB),
        es_url=cfg.elasticsearch.urls(),
        es={"index_prefix": f"test-{tag}"},
        redis={"namespace": f"test-{tag}"},
        instance_name="test",
        indexing={"metrics_port": None},
        search={
            "metadata_fields": {
                "year": "long",
                "lang": "keyword",
                "score": "double",
                "reviewed": "boolean",
                "published": "date",
            }
        },
    )


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """One model per test session (loading takes seconds)."""
    model = Embedder()
    model.load()
    return model


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[str]:
    """A fresh database for the session, built by the real migrations, dropped after."""
    name = make_url(settings.database_url).database
    await admin_sql(settings.database_url, f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(migrate.upgrade, settings)
        yield settings.database_url
    finally:
        await admin_sql(settings.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def resources(
    settings: Settings, embedder: Embedder, database: str
) -> AsyncIterator[Resources]:
    async with open_resources(settings, embedder=embedder) as res:
        await res.indices.ensure_all()
        yield res
        prefix = settings.es.index_prefix
        names = list((await res.es.indices.get(index=f"{prefix}-*")).body)
        if names:
            await res.es.indices.delete(index=",".join(names))
        for kind in KINDS:
            await res.es.options(ignore_status=404).indices.delete_index_template(
                name=f"{prefix}-{kind}"
            )


@pytest.fixture
async def tenant(resources: Resources) -> TenantKey:
    return await make_tenant(resources)


@pytest.fixture
async def client(
    settings: Settings, embedder: Embedder, resources: Resources
) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(settings, embedder=embedder)) as test_client:
        yield test_client


@pytest.fixture
async def api(client: AsyncTestClient, tenant: TenantKey) -> AsyncTestClient:
    """A client authenticated as this test's tenant."""
    client.headers.update(tenant.headers)
    return client


@pytest.fixture
async def console_user(resources: Resources, tenant: TenantKey) -> ConsoleUser:
    """An admin of this test's tenant, with a password."""
    return await make_user(resources, tenant, "admin")


@pytest.fixture
def visitor(client: AsyncTestClient) -> AsyncTestClient:
    """A browser-like client of the console without a session: it shows redirects (the
    login's, a page's to the login) instead of following them."""
    client.follow_redirects = False
    return client


@pytest.fixture
async def console(visitor: AsyncTestClient, console_user: ConsoleUser) -> AsyncTestClient:
    """``visitor`` logged in to the console as ``console_user`` (its session cookie and
    CSRF cookie set; POST forms with ``tests.support.csrf_field(console)``)."""
    response = await console_login(visitor, console_user)
    assert response.status_code == 303, response.text
    return visitor
