"""The app end to end against the datastores as production runs them: Elasticsearch with
x-pack security (TLS, a user whose role reaches only its index prefix) and Redis with a
password, both started here (`StackConfig.secure`) on free ports beside the session's
stack, with the credentials read from the .env file the stack writes. A wrong password is
a 503 on /ready naming the dependency, with no secret in the answer or the logs, and an
indexer the cluster refuses keeps its writes for when the password is right."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch, AuthenticationException, AuthorizationException
from litestar.testing import AsyncTestClient
from pydantic import SecretStr
from sqlalchemy import text

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import free_port
from myaiserv.resources import Resources, open_resources
from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import Stack, write_env_file
from tests.integration.test_stack import _free_block
from tests.support import drain, eventually, make_tenant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secured() -> Iterator[StackConfig]:
    root = Path(tempfile.mkdtemp(prefix="myaiserv-secured-"))
    root.chmod(0o755)  # the servers' user must traverse it
    http = _free_block(19700, 1)
    config = StackConfig(dir=root / "stack", services=("elasticsearch", "redis"))
    config.elasticsearch.http_port = http
    config.elasticsearch.transport_port = http + 100
    config.elasticsearch.index_prefix = f"secured-{uuid.uuid4().hex[:6]}"
    config.redis.port = free_port()
    config.secure(True)
    stack = Stack(config)
    try:
        stack.up()
        yield config
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def secured_settings(secured: StackConfig, settings: Settings) -> Settings:
    """This session's database, the secured pair as `stack up --secure` writes it to .env."""
    env_file = secured.dir / ".env"
    write_env_file(env_file, secured.env())
    return Settings(
        _env_file=env_file,  # type: ignore[call-arg]
        database_url=settings.database_url,
        es={"index_prefix": secured.elasticsearch.index_prefix},
        redis={"namespace": settings.redis.namespace},
        instance_name="secured",
        indexing={"metrics_port": None},
    )


@pytest.fixture(scope="module")
async def secured_resources(
    secured_settings: Settings, embedder: Embedder, database: str
) -> AsyncIterator[Resources]:
    async with open_resources(secured_settings, embedder=embedder) as res:
        await res.indices.ensure_all()
        yield res


def with_passwords(settings: Settings, *, es: str | None = None, redis: str | None = None):
    update: dict[str, object] = {}
    if es is not None:
        update["es"] = settings.es.model_copy(update={"password": SecretStr(es)})
    if redis is not None:
        update["redis"] = settings.redis.model_copy(update={"password": SecretStr(redis)})
    return settings.model_copy(update=update)


async def test_the_app_serves_end_to_end_against_the_secured_pair(
    secured: StackConfig, secured_settings: Settings, secured_resources: Resources, embedder
) -> None:
    assert secured_settings.es_url[0].startswith("https://")
    assert secured_settings.es.password is not None and secured_settings.redis.password
    # Security is really on: TLS from our CA, and no answer without credentials.
    async with AsyncElasticsearch(
        secured_settings.es_url, ca_certs=str(secured.es_ca_certs)
    ) as anonymous:
        with pytest.raises(AuthenticationException):
            await anonymous.info()
    # The role reaches the app's own indices only.
    with pytest.raises(AuthorizationException):
        await secured_resources.es.indices.create(index="someone-else")

    tenant = await make_tenant(secured_resources)
    app = create_app(secured_settings, embedder=embedder)
    async with AsyncTestClient(app=app) as client:
        client.headers.update(tenant.headers)
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["elasticsearch"]["status"] == "ok"

        written = await client.post(
            "/v1/documents",
            json={"title": "Vault", "text": "Photosynthesis behind a locked cluster."},
        )
        assert written.status_code == 201, written.text
        assert await drain(secured_resources) >= 1
        found = await client.post(
            "/v1/search", json={"query": "photosynthesis", "kinds": ["documents"]}
        )
        assert found.status_code == 200, found.text
        assert [h["fields"]["title"] for h in found.json()["hits"]] == ["Vault"]
        # A second time from the cache: Redis answers with its password.
        again = await client.post(
            "/v1/search", json={"query": "photosynthesis", "kinds": ["documents"]}
        )
        assert again.json()["hits"] == found.json()["hits"]
        assert await secured_resources.redis.dbsize() > 0


@pytest.mark.parametrize("dependency", ["elasticsearch", "redis"])
async def test_a_wrong_password_is_a_503_naming_the_dependency(
    dependency: str,
    secured_settings: Settings,
    secured_resources: Resources,
    embedder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = f"wrong-{os.urandom(6).hex()}"
    bad = with_passwords(
        secured_settings,
        es=wrong if dependency == "elasticsearch" else None,
        redis=wrong if dependency == "redis" else None,
    )
    tenant = await make_tenant(secured_resources)
    caplog.set_level(logging.DEBUG)
    async with AsyncTestClient(app=create_app(bad, embedder=embedder)) as client:
        resp = await client.get("/ready")
        # Searches: a 503 without Elasticsearch; without Redis, served uncached.
        searched = await client.post(
            "/v1/search", json={"query": "anything"}, headers=tenant.headers
        )
    assert searched.status_code == (503 if dependency == "elasticsearch" else 200), searched.text
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["failing"] == [dependency]
    assert dependency in body["detail"]
    assert "authenticat" in body["checks"][dependency]["detail"].lower()
    assert resp.headers["Retry-After"]
    right = {
        "elasticsearch": secured_settings.es.password,
        "redis": secured_settings.redis.password,
    }[dependency]
    assert right is not None
    for secret in (wrong, right.get_secret_value()):
        assert secret not in resp.text and secret not in searched.text
        assert secret not in caplog.text


async def test_an_indexer_refused_by_elasticsearch_keeps_the_writes_for_later(
    secured_settings: Settings, secured_resources: Resources, embedder
) -> None:
    from indexers.worker import Worker

    tenant = await make_tenant(secured_resources)
    bad = with_passwords(secured_settings, es=f"wrong-{os.urandom(6).hex()}")
    app = create_app(secured_settings, embedder=embedder)
    async with AsyncTestClient(app=app) as client:
        client.headers.update(tenant.headers)
        written = await client.post("/v1/documents", json={"title": "Later", "text": "Ferns."})
        assert written.status_code == 201, written.text
        async with open_resources(bad, embedder=embedder) as refused:
            assert await Worker(refused, name="refused").drain(max_seconds=10) == 0
        async with secured_resources.sessionmaker() as session:
            pending = await session.scalar(
                text("SELECT count(*) FROM outbox WHERE tenant_id = :t"), {"t": tenant.id}
            )
            dead = await session.scalar(
                text("SELECT count(*) FROM dead_letters WHERE tenant_id = :t"), {"t": tenant.id}
            )
        assert (pending, dead) == (1, 0)
        # Right password again: the write is indexed and found.
        await eventually(lambda: drain_found(client, secured_resources), within=120)
        found = await client.post("/v1/search", json={"query": "ferns", "kinds": ["documents"]})
        assert [h["fields"]["title"] for h in found.json()["hits"]] == ["Later"]


async def drain_found(client: AsyncTestClient, resources: Resources) -> bool:
    """The refused batch comes due again after its backoff; drain until it is indexed."""
    await drain(resources)
    found = await client.post("/v1/search", json={"query": "ferns", "kinds": ["documents"]})
    return bool(found.json()["hits"])
