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
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from myaiserv.config import Settings
from myaiserv.db.models import Document
from myaiserv.resources import Resources
from myaiserv.stack.config import StackConfig, WebConfig
from myaiserv.stack.manager import Stack
from myaiserv.stack.web import WebService
from tests.conftest import TenantKey, eventually, free_port, make_tenant

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def web(stack: Stack, settings: Settings, resources, tmp_path_factory) -> Iterator[WebService]:
    """Three instances + one indexer + nginx on free ports, in a folder of their own."""
    config = StackConfig(
        dir=stack.config.dir,
        elasticsearch=stack.config.elasticsearch,
        postgres=stack.config.postgres,
        redis=stack.config.redis,
        web=WebConfig(
            instances=3,
            port=free_port(),
            first_instance_port=_free_range(3),  # instance ports are consecutive
            first_indexer_metrics_port=free_port(),
        ),
    )
    service = WebService(
        tmp_path_factory.mktemp("web"),
        config,
        extra_env={
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "MYAISERV_ES__INDEX_PREFIX": settings.es.index_prefix,
            "MYAISERV_SEARCH__METADATA_FIELDS": json.dumps(settings.search.metadata_fields),
            "MYAISERV_LLM__RATE_LIMIT_PER_MINUTE": "5",
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()


def _free_range(n: int) -> int:
    for _ in range(50):
        first = free_port()
        ports = [first + i for i in range(n)]
        if all(_port_free(p) for p in ports):
            return first
    raise RuntimeError("no free port range")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
    failed: list[int] = []

    async def writer(n: int) -> None:
        async with httpx.AsyncClient(base_url=lb, headers=tenant.headers, timeout=60) as client:
            for i in range(15):
                resp = await client.post(
                    "/v1/documents",
                    json={"title": f"w{n}-{i}", "text": f"Write {n}-{i} under failover."},
                )
                if resp.status_code == 201:
                    acknowledged.append(resp.json()["id"])
                else:
                    failed.append(resp.status_code)

    async def killer() -> None:
        await asyncio.sleep(0.5)
        os.kill(web.status()["instances"]["web-2"]["pid"], signal.SIGKILL)

    await asyncio.gather(*(writer(n) for n in range(4)), killer())
    try:
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
        # nginx sent the requests the dead instance refused to the others.
        assert len(acknowledged) >= 60 - len(failed) and len(failed) <= 4
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
