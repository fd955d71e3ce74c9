"""Shared fixtures. Integration tests run against the real local stack (started here if it
is not up yet), on their own database, Redis database and index prefix; every test that
writes data uses a tenant of its own."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from myaiserv.app import create_app
from myaiserv.auth.service import TenantService
from myaiserv.config import Settings
from myaiserv.db import migrate
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import free_port
from myaiserv.resources import Resources, open_resources
from myaiserv.search.indices import KINDS
from myaiserv.stack.config import StackConfig, WebConfig
from myaiserv.stack.manager import Stack
from myaiserv.stack.postgres import TEST_DATABASE_SUFFIX
from myaiserv.stack.web import WebService
from tooling.ports import free_port_range

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
    # A database of this session's own: test sessions may run side by side.
    database = f"{cfg.postgres.database}{TEST_DATABASE_SUFFIX}_{uuid.uuid4().hex[:8]}"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=cfg.postgres.url(database),
        redis_url=cfg.redis.url(TEST_REDIS_DB),
        es_url=cfg.elasticsearch.urls(),
        es={"index_prefix": f"test-{uuid.uuid4().hex[:8]}"},
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


async def _admin(url: str, statement: str) -> None:
    # A fresh connection each time: tests restart PostgreSQL, which kills pooled ones.
    engine = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[str]:
    """A fresh database for the session, built by the real migrations, dropped after."""
    name = make_url(settings.database_url).database
    await _admin(settings.database_url, f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(migrate.upgrade, settings)
        yield settings.database_url
    finally:
        await _admin(settings.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


@dataclass
class TenantKey:
    id: UUID
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(resources: Resources, scopes: list[str] | None = None) -> TenantKey:
    name = f"t-{uuid.uuid4().hex[:10]}"
    async with resources.sessionmaker() as session, session.begin():
        issued = await TenantService(session).create_tenant(
            name, scopes=scopes or ["read", "write", "admin"]
        )
    return TenantKey(issued.tenant_id, name, issued.plaintext)


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


def web_tier(
    stack: Stack, settings: Settings, root: Path, instances: int, **env: str
) -> WebService:
    """``instances`` API instances + one indexer + nginx on free ports, in ``root``, on
    this session's database, Redis database and index prefix; ``env``: more settings."""
    config = StackConfig(
        dir=stack.config.dir,
        elasticsearch=stack.config.elasticsearch,
        postgres=stack.config.postgres,
        redis=stack.config.redis,
        web=WebConfig(
            instances=instances,
            port=free_port(),
            first_instance_port=free_port_range(instances),  # instance ports are consecutive
            first_indexer_metrics_port=free_port(),
        ),
    )
    return WebService(
        root,
        config,
        extra_env={
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "MYAISERV_ES__INDEX_PREFIX": settings.es.index_prefix,
            "MYAISERV_SEARCH__METADATA_FIELDS": json.dumps(settings.search.metadata_fields),
            "LOG_LEVEL": "WARNING",
            **env,
        },
    )


async def drain(resources: Resources) -> int:
    """Index everything due (as a running indexer would), then make it searchable."""
    from indexers.worker import Worker

    done = await Worker(resources, name="test").drain(idle_exit=True)
    for kind in KINDS:
        await resources.es.indices.refresh(index=resources.indices.alias(kind))
    return done


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
