"""The compose topology, live without Docker: three API instances and an indexer behind a
real nginx (`stack up --web 3`), on this test session's database, Redis database and
index prefix. Load spreads over every instance, caches and rate limits are shared
through Redis, an instance killed under writes loses no acknowledged write, and a real
Prometheus scrapes the instances and evaluates the alert rules against them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from myaiserv.config import Settings
from myaiserv.db import migrate
from myaiserv.db.models import Document, OutboxEvent
from myaiserv.evaluation.harness import free_port
from myaiserv.resources import Resources
from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import Stack
from myaiserv.stack.web import WebService
from tests.support import TenantKey, admin_sql, eventually, make_tenant, web_tier

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def web(stack: Stack, settings: Settings, resources, tmp_path_factory) -> Iterator[WebService]:
    """Three instances + one indexer + nginx on free ports, in a folder of their own."""
    service = web_tier(
        stack,
        settings,
        tmp_path_factory.mktemp("web"),
        3,
        MYAISERV_LLM__RATE_LIMIT_PER_MINUTE="5",
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture
def lb(web: WebService) -> str:
    return f"http://127.0.0.1:{web.web.port}"


async def test_requests_spread_over_every_instance(lb: str, web: WebService):
    async with httpx.AsyncClient(base_url=lb) as client:
        seen = {(await client.get("/health")).headers["x-instance"] for _ in range(30)}
    assert seen == set(web.instance_names())


async def test_caches_and_rate_limits_are_shared(
    lb: str, web: WebService, resources: Resources, tenant: TenantKey
):
    async with httpx.AsyncClient(base_url=lb, headers=tenant.headers, timeout=60) as client:
        created = await client.post(
            "/v1/documents", json={"title": "Shared", "text": "Cache shared by every instance."}
        )
        assert created.status_code == 201

        async def indexed() -> bool:
            found = await client.post(
                "/v1/search", json={"query": "shared instance", "mode": "bm25"}
            )
            return found.status_code == 200 and bool(found.json()["hits"])

        assert await eventually(indexed, within=60)
        body = {"query": "cache shared every instance", "mode": "bm25"}
        answers = [await client.post("/v1/search", json=body) for _ in range(6)]
        outcomes = {(r.headers["x-instance"], r.headers["x-cache"]) for r in answers}
        # One instance computed the page; the others served it from Redis.
        assert {o for _, o in outcomes} <= {"miss", "hit"}
        assert {i for i, o in outcomes if o == "hit"} - {i for i, o in outcomes if o == "miss"}

        question = {"model": "myaiserv-rag", "messages": [{"role": "user", "content": "x?"}]}
        if time.time() % 60 > 40:  # the limit's window is a minute: stay inside one
            await asyncio.sleep(61 - time.time() % 60)
        codes = [
            (await client.post("/v1/chat/completions", json=question)).status_code for _ in range(6)
        ]
    assert codes == [200] * 5 + [429]  # 5 per minute per tenant, across all instances


async def test_an_instance_killed_under_writes_loses_no_acknowledged_write(
    lb: str, web: WebService, resources: Resources
):
    tenant = await make_tenant(resources)
    acknowledged: list[str] = []
    failed: list[int | str] = []

    async def writer(n: int) -> None:
        async with httpx.AsyncClient(base_url=lb, headers=tenant.headers, timeout=60) as client:
            for i in range(15):
                try:
                    resp = await client.post(
                        "/v1/documents",
                        json={"title": f"w{n}-{i}", "text": f"Write {n}-{i} under failover."},
                    )
                except httpx.RemoteProtocolError as exc:
                    # Killed between writing the response head and its body: nginx has
                    # already forwarded the head, so it can only cut the response short.
                    # The client never got an id, so the write is not acknowledged.
                    failed.append(type(exc).__name__)
                    continue
                if resp.status_code == 201:
                    acknowledged.append(resp.json()["id"])
                else:
                    failed.append(resp.status_code)

    async def killer() -> None:
        await asyncio.sleep(0.5)
        os.kill(web.status()["instances"]["web-2"]["pid"], signal.SIGKILL)

    try:
        await asyncio.gather(*(writer(n) for n in range(4)), killer())
        async with resources.sessionmaker() as session:
            stored = set(
                map(
                    str,
                    await session.scalars(
                        select(Document.id).where(Document.tenant_id == tenant.id)
                    ),
                )
            )
        assert set(acknowledged) <= stored  # nothing acknowledged is lost
        # nginx sent the requests the dead instance refused to the others. Only those in
        # flight on it when it died can fail, one per writer at most: a 502 when it had not
        # answered yet, a response cut short when it had sent the head.
        assert len(failed) <= 4 and set(failed) <= {502, "RemoteProtocolError"}
        async with httpx.AsyncClient(base_url=lb) as client:
            seen = {(await client.get("/health")).headers["x-instance"] for _ in range(20)}
        assert "web-2" not in seen and seen == {"web-1", "web-3"}
    finally:
        web.start_instance("web-2")
        await asyncio.to_thread(web.wait_ready, "web-2")


async def test_prometheus_scrapes_the_instances_and_an_alert_fires(
    web: WebService, stack: Stack, tmp_path
):
    port = free_port()
    targets = [f"127.0.0.1:{web.instance_port(n)}" for n in web.instance_names()]
    rules = sorted((ROOT / "monitoring" / "rules").glob("*.yml"))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(r) for r in rules],
        "scrape_configs": [{"job_name": "web", "static_configs": [{"targets": targets}]}],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited on
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        async with httpx.AsyncClient(base_url=api, timeout=10) as client:

            async def scraped() -> bool:
                try:
                    resp = await client.get("/query", params={"query": "up{job='web'}"})
                except httpx.TransportError:
                    return False
                results = resp.json()["data"]["result"] if resp.status_code == 200 else []
                return len(results) == 3 and all(r["value"][1] == "1" for r in results)

            assert await eventually(scraped, within=60)
            await asyncio.to_thread(stack.stop, "redis")
            try:

                async def redis_alert() -> bool:
                    alerts = (await client.get("/alerts")).json()["data"]["alerts"]
                    return any(
                        a["labels"].get("dependency") == "redis"
                        or "Redis" in a["labels"].get("alertname", "")
                        for a in alerts
                    )

                assert await eventually(redis_alert, within=60)
            finally:
                await asyncio.to_thread(stack.start, "redis")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_one_es_node_down_under_ingest_and_search(
    stack: Stack, settings: Settings, embedder, database: str
):
    """A 3-node cluster with 1 replica: stop a node while documents are written, indexed
    and searched; everything keeps working (yellow), the node rejoins, nothing is lost.

    A database of its own: the web tier of this module runs an indexer on the session's
    database, which would otherwise take this test's outbox rows to the other cluster."""
    import shutil
    import tempfile
    import uuid

    from litestar.testing import AsyncTestClient

    from indexers.worker import Worker
    from myaiserv.app import create_app
    from myaiserv.resources import open_resources
    from tests.integration.test_stack import _free_block

    root = Path(tempfile.mkdtemp(prefix="myaiserv-es3-"))
    os.chmod(root, 0o755)  # noqa: S103 - the Elasticsearch user must traverse it
    http = _free_block(19500, 3)
    config = StackConfig(dir=root / "stack", services=("elasticsearch",))
    config.elasticsearch.nodes = 3
    config.elasticsearch.http_port = http
    config.elasticsearch.transport_port = http + 100
    cluster = Stack(config)
    es_service = cluster.services["elasticsearch"]
    own_db = f"{make_url(settings.database_url).database}_es3"
    own_url = make_url(settings.database_url).set(database=own_db)
    try:
        await admin_sql(settings.database_url, f'CREATE DATABASE "{own_db}"')
        await asyncio.to_thread(cluster.up)
        three = settings.model_copy(
            update={
                "database_url": own_url.render_as_string(hide_password=False),
                "es_url": config.elasticsearch.urls(),
                "es": settings.es.model_copy(
                    update={"index_prefix": f"es3-{uuid.uuid4().hex[:6]}", "replicas": 1}
                ),
            }
        )
        await asyncio.to_thread(migrate.upgrade, three)
        async with open_resources(three, embedder=embedder) as res:
            await res.indices.ensure_all()
            await res.es.cluster.health(wait_for_status="green", timeout="60s")
            tenant = await make_tenant(res)
            app = create_app(three, embedder=embedder)
            async with AsyncTestClient(app=app) as client:
                client.headers.update(tenant.headers)
                failures: list[str] = []
                stop = asyncio.Event()

                async def search_forever() -> None:
                    while not stop.is_set():
                        resp = await client.post(
                            "/v1/search",
                            json={"query": "replicated harbour", "mode": "hybrid"},
                            headers={"Cache-Control": "no-cache"},
                        )
                        if resp.status_code != 200:
                            failures.append(resp.text[:200])
                        await asyncio.sleep(0.1)

                async def write(batch: int) -> None:
                    docs = [
                        {"title": f"b{batch}-{i}", "text": f"Replicated harbour log {batch}-{i}."}
                        for i in range(20)
                    ]
                    resp = await client.post("/v1/documents/batch", json={"documents": docs})
                    assert resp.status_code == 201, resp.text
                    await Worker(res, name="es3").drain(idle_exit=True)

                searcher = asyncio.create_task(search_forever())
                try:
                    await write(0)
                    await asyncio.to_thread(es_service.stop, ["node-2"])
                    health = await res.es.cluster.health(wait_for_nodes="2", timeout="60s")
                    assert health["status"] in ("yellow", "green")
                    await write(1)
                    await write(2)
                finally:
                    stop.set()
                    await searcher
                assert failures == []
                await asyncio.to_thread(es_service.start)  # node-2 rejoins
                health = await res.es.cluster.health(wait_for_status="green", timeout="120s")
                assert health["number_of_nodes"] == 3

                # Writes that met the failover were retried from the outbox (with backoff):
                # let the indexer finish, as a running one would.
                async def outbox_empty() -> bool:
                    await Worker(res, name="es3").drain(idle_exit=True)
                    async with res.sessionmaker() as session:
                        left = await session.scalar(
                            select(func.count(OutboxEvent.id)).where(
                                OutboxEvent.tenant_id == tenant.id
                            )
                        )
                    return left == 0

                assert await eventually(outbox_empty, within=120, interval=1)
                await res.es.indices.refresh(index=res.indices.alias("documents"))
                found = await res.es.search(
                    index=res.indices.alias("documents"),
                    query={"term": {"tenant_id": str(tenant.id)}},
                    size=0,
                    aggs={"docs": {"cardinality": {"field": "document_id"}}},
                )
                assert found["aggregations"]["docs"]["value"] == 60
                assert found["hits"]["total"]["value"] == 60  # one chunk each, no duplicate
    finally:
        await asyncio.to_thread(cluster.down)
        shutil.rmtree(root, ignore_errors=True)
        await admin_sql(settings.database_url, f'DROP DATABASE IF EXISTS "{own_db}" WITH (FORCE)')
