"""The production topology, live: docker-compose.yml started by `make compose-test`
(nginx, 3 web instances, the indexer, 3 Elasticsearch nodes, PostgreSQL, Redis with two
replicas and three Sentinels, Prometheus, Alertmanager) on this machine's engine.

The tests run in file order and share one topology: each leaves it as it found it (3
web instances, every node up), so a failure in one does not cascade into the next.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tooling.topology.live import Load, Topology, eventually
from tooling.topology.settings import wait_ready

pytestmark = pytest.mark.topology

LONG_RUNNING = (
    "nginx",
    "web",
    "indexer",
    "es01",
    "es02",
    "es03",
    "postgres",
    "redis",
    "redis-replica-1",
    "redis-replica-2",
    "redis-sentinel-1",
    "redis-sentinel-2",
    "redis-sentinel-3",
    "prometheus",
    "alertmanager",
)
DATASTORES = ("es01", "es02", "es03", "postgres", "redis", "redis-replica-1", "redis-replica-2")


@dataclass
class Api:
    client: httpx.Client
    tenant: str


@pytest.fixture(scope="module")
def topo() -> Topology:
    topology = Topology()
    wait_ready(timeout_s=120)
    return topology


@pytest.fixture(scope="module")
def api(topo: Topology) -> Iterator[Api]:
    """A tenant of its own, made with the CLI inside a web container (as an operator
    would), and a client that goes through nginx with its key."""
    name = f"topology-{uuid.uuid4().hex[:8]}"
    key = topo.create_tenant(name)
    with httpx.Client(base_url=topo.url, headers={"X-API-Key": key}, timeout=60) as client:
        yield Api(client, name)


def write(api: Api, title: str, text: str) -> str:
    resp = api.client.post("/v1/documents", json={"title": title, "text": text})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def found_titles(api: Api, query: str) -> list[str]:
    resp = api.client.post("/v1/search", json={"query": query, "kinds": ["documents"]})
    assert resp.status_code == 200, resp.text
    return [hit["fields"]["title"] for hit in resp.json()["hits"]]


def test_every_service_runs_and_passes_its_health_check(topo: Topology) -> None:
    for service in LONG_RUNNING:
        containers = topo.containers(service)
        assert containers, f"{service} has no container"
        for container in containers:
            topo.wait_healthy(container, within=300)
    assert len(topo.containers("web")) == 3
    # The one-shot migrate job ran to completion.
    (migrate,) = topo.containers("migrate")
    state = topo.inspect(migrate)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)


def test_the_app_containers_metric_files_are_all_their_own(topo: Topology) -> None:
    """Processes write their metrics to files named by pid in PROMETHEUS_MULTIPROC_DIR;
    one left in the image by the build's checks (root's) made a job whose process got the
    same pid fail at import (migrate, run again on `compose up --scale`)."""
    files = 'find "$PROMETHEUS_MULTIPROC_DIR" -type f'
    for service in ("web", "indexer"):
        for container in topo.containers(service):
            found = topo.exec(container, "sh", "-c", files)
            foreign = topo.exec(container, "sh", "-c", files + ' ! -user "$(id -u)"')
            assert found.strip(), (service, "no metric files: is this the folder in use?")
            assert foreign.strip() == "", (service, foreign)


def test_only_nginx_is_published_and_the_datastores_are_internal(topo: Topology) -> None:
    project = topo.env["COMPOSE_PROJECT_NAME"]
    for service in DATASTORES:
        for container in topo.containers(service):
            info = topo.inspect(container)
            assert not any(
                info["NetworkSettings"]["Ports"].get(p) for p in info["NetworkSettings"]["Ports"]
            ), service
            assert set(info["NetworkSettings"]["Networks"]) == {f"{project}_backend"}, service
    out = topo.engine.run("network", "inspect", f"{project}_backend", capture=True).stdout
    backend = json.loads(out)[0]
    assert backend.get("internal", backend.get("Internal")) is True  # podman's key, Docker's
    (nginx,) = topo.containers("nginx")
    ports = topo.inspect(nginx)["NetworkSettings"]["Ports"]
    assert ports["80/tcp"][0]["HostPort"] == topo.env["HTTP_PORT"]
    # The datastores refuse anyone without their passwords, even on the inside.
    (redis,) = topo.containers("redis")
    assert (
        "NOAUTH"
        in topo.engine.run(
            "exec", "-e", "REDISCLI_AUTH=", redis, "redis-cli", "get", "x", capture=True
        ).stdout
    )


def test_elasticsearch_speaks_tls_only_and_myaiserv_sees_only_its_indices(
    topo: Topology,
) -> None:
    (node,) = topo.containers("es02")
    user = (
        f"{topo.env.get('MYAISERV_ES__USERNAME', 'myaiserv')}:{topo.env['MYAISERV_ES__PASSWORD']}"
    )

    def status(path: str, *options: str) -> str:
        return topo.exec(
            node, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
            "--cacert", "config/certs/ca/ca.crt", *options, f"https://localhost:9200{path}",
        )  # fmt: skip

    assert status("/_cluster/health") == "401"  # no credentials
    assert status("/myaiserv-documents/_count", "-u", user) == "200"
    assert status("/.security/_search", "-u", user) == "403"
    assert status("/_security/user", "-u", user) == "403"
    assert status("/other-index/_search", "-u", user) == "403"
    change = (
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"persistent": {"cluster.routing.allocation.enable": "all"}}',
    )
    assert status("/_cluster/settings", "-u", user, *change) == "403"
    # Plain HTTP is not served at all.
    plain = topo.engine.run(
        "exec", node, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
        "http://localhost:9200/", check=False, capture=True,
    )  # fmt: skip
    assert plain.stdout in ("000", "")


def test_ready_through_nginx_and_requests_spread_over_the_three_instances(
    topo: Topology,
) -> None:
    seen = []
    with httpx.Client(base_url=topo.url, timeout=10) as client:
        for _ in range(60):
            resp = client.get("/ready")
            assert resp.status_code == 200, resp.text
            seen.append(resp.headers["x-instance"])
    instances = {topo.inspect(c)["Config"]["Hostname"] for c in topo.containers("web")}
    assert {name.split(":")[0] for name in seen} == instances
    assert len(instances) == 3


def test_a_document_written_through_nginx_is_searchable_and_answers_cite_it(api: Api) -> None:
    doc = write(api, "Tidal lagoons", "Spring tides follow the new and the full moon.")
    eventually(lambda: found_titles(api, "spring tides moon") == ["Tidal lagoons"], within=120)
    resp = api.client.post("/v1/rag/answer", json={"question": "When do spring tides come?"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["citations"]
    assert body["passages"][0]["document_id"] == doc


def test_the_image_lists_and_serves_both_embedding_models(api: Api) -> None:
    """The image carries bge-small-en-v1.5 beside the default (installed at build time), so
    the model is a setting of the deployment, not of the image."""
    resp = api.client.get("/v1/models")
    assert resp.status_code == 200, resp.text
    assert {"all-MiniLM-L6-v2", "bge-small-en-v1.5"} <= {m["id"] for m in resp.json()["data"]}
    vectors = {}
    for model in ("all-MiniLM-L6-v2", "bge-small-en-v1.5"):
        resp = api.client.post("/v1/embeddings", json={"model": model, "input": ["tide"]})
        assert resp.status_code == 200, resp.text
        assert resp.json()["model"] == model
        vectors[model] = resp.json()["data"][0]["embedding"]
        assert len(vectors[model]) == 384
    assert vectors["all-MiniLM-L6-v2"] != vectors["bge-small-en-v1.5"]


def test_an_mcp_client_through_nginx_adds_a_document_and_finds_it(topo: Topology) -> None:
    """Stateless MCP behind nginx: the client's requests land on different instances, and
    each one answers on its own. A tenant of its own: the other tests' searches see only
    their documents."""
    key = topo.create_tenant(f"topology-mcp-{uuid.uuid4().hex[:8]}")

    async def session() -> list[str]:
        async with (
            httpx2.AsyncClient(headers={"X-API-Key": key}, timeout=60) as http,
            streamable_http_client(f"{topo.url}/mcp", http_client=http) as (read, write_),
            ClientSession(read, write_) as mcp,
        ):
            await mcp.initialize()
            tools = {tool.name for tool in (await mcp.list_tools()).tools}
            assert {"search", "add_document", "answer"} <= tools
            added = await mcp.call_tool(
                "add_document",
                {"title": "Salt marshes", "text": "Cordgrass binds the mud of salt marshes."},
            )
            assert not added.is_error, added

            async def titles() -> list[str]:
                found = await mcp.call_tool("search", {"query": "cordgrass salt marsh mud"})
                assert not found.is_error, found
                assert isinstance(found.structured_content, dict)
                return [p.get("title") for p in found.structured_content["passages"]]

            for _ in range(120):  # indexed within two minutes
                seen = await titles()
                if "Salt marshes" in seen:
                    break
                await asyncio.sleep(1)
            return seen

    assert "Salt marshes" in asyncio.run(session())


def test_prometheus_finds_every_web_instance_and_the_indexer(topo: Topology) -> None:
    def scraped() -> bool:
        return len(topo.scraped("web")) == 3 and len(topo.scraped("indexer")) == 1

    eventually(scraped, within=120, every=5)


def test_a_stopped_instance_raises_an_alert(topo: Topology) -> None:
    # The alert compares with the most instances seen in the last 15 minutes: wait until
    # the rule's own look-back has recorded all three (a fresh topology may not have yet;
    # one a previous run scaled to five has seen more).
    seen = 'max_over_time(count(up{job="web"} == 1)[15m:])'
    eventually(
        lambda: [float(r["value"][1]) >= 3 for r in topo.prometheus(seen)] == [True],
        within=120,
        every=5,
    )
    victim = topo.containers("web")[-1]
    topo.stop(victim)
    try:
        try:
            eventually(lambda: "MyAIServWebInstanceLost" in topo.firing(), within=240, every=5)
        except AssertionError as exc:  # say where the alert got to
            up = topo.prometheus('up{job="web"}')
            raise AssertionError(f"{exc}; alerts: {topo.alerts()}; up series: {up}") from None
        eventually(
            lambda: "MyAIServWebInstanceLost" in topo.alertmanager_alerts(), within=60, every=5
        )
    finally:
        topo.start(victim)
        topo.wait_healthy(victim)
    try:
        eventually(lambda: len(topo.scraped("web")) == 3, within=120, every=5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; scraped: {topo.scraped('web')}") from None


def test_scaling_to_five_instances_fails_no_request_and_keeps_nginx(
    topo: Topology, api: Api
) -> None:
    (nginx,) = topo.containers("nginx")
    started = topo.inspect(nginx)["State"]["StartedAt"]
    with Load(
        lambda c: c.post("/v1/search", json={"query": "tides"}, headers=api.client.headers)
    ) as load:
        time.sleep(3)
        topo.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "web=5")
        for container in topo.containers("web"):
            topo.wait_healthy(container)
        eventually(lambda: len(load.instances) == 5, within=60)
    assert load.failures == []
    assert load.ok > 0
    assert topo.inspect(nginx)["State"]["StartedAt"] == started
    topo.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "web=3")
    assert len(topo.containers("web")) == 3


def test_search_keeps_answering_while_an_elasticsearch_node_is_down(
    topo: Topology, api: Api
) -> None:
    (node,) = topo.containers("es01")
    # Past the result cache: every search is answered by Elasticsearch.
    headers = {**api.client.headers, "Cache-Control": "no-cache"}
    began = now()
    with Load(
        lambda c: c.post(
            "/v1/search", json={"query": "tides", "kinds": ["documents"]}, headers=headers
        )
    ) as load:
        time.sleep(2)
        stopped = now()
        stopping = time.monotonic()
        topo.stop(node)
        stop_s = time.monotonic() - stopping
        time.sleep(20)
    try:
        assert load.failures == [], timeline(topo, load, began, f"{stopped} (in {stop_s:.1f}s)")
        assert load.ok > 0
        # Every document is still found: the replicas on the other nodes serve it.
        assert found_titles(api, "spring tides moon") == ["Tidal lagoons"]
    finally:
        topo.start(node)
        topo.wait_healthy(node)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timeline(topo: Topology, load: Load, began: str, stopped: str) -> str:
    """What a failed search under a lost node needs explained: the failed and slow
    answers, what the web instances logged about Elasticsearch and what the other nodes
    logged, from the start of the load."""
    lines = [f"load began at {began}, es01 stopped at {stopped}", "failures:", *load.failures]
    lines += ["slow answers:", *load.slow]
    for service in ("web", "es01", "es02", "es03"):
        for container in topo.containers(service):
            logged = topo.logs(container, began).splitlines()
            if service == "web":
                logged = [line for line in logged if "elastic" in line and "access" not in line]
            lines.append(f"{service} {container[:12]}:")
            lines += [line[:400] for line in logged]
    return "\n".join(lines)


def test_redis_primary_failover_through_sentinel(topo: Topology) -> None:
    primary = topo.redis_primary()
    (container,) = topo.containers(primary)
    topo.stop(container)
    try:
        try:
            eventually(lambda: topo.redis_primary() != primary, within=120)
        except AssertionError as exc:
            sentinel = topo.containers("redis-sentinel-1")[0]
            logs = topo.engine.run("logs", "--tail", "60", sentinel, capture=True)
            raise AssertionError(f"{exc}; Sentinel said:\n{logs.stdout}{logs.stderr}") from None
        new_primary = topo.redis_primary()
        assert new_primary in ("redis", "redis-replica-1", "redis-replica-2")
        # The app follows: /ready (which pings Redis) is 200 again through the Sentinels.
        wait_ready(timeout_s=60)
    finally:
        topo.start(container)
        topo.wait_healthy(container)


def test_down_then_up_keeps_every_acknowledged_write(topo: Topology, api: Api) -> None:
    written = {
        write(api, f"Kept {i}", f"Acknowledged write number {i} about ferns.") for i in range(5)
    }
    topo.compose("down", timeout=600)
    topo.compose("up", "-d", "--no-build", "--scale", "web=3", timeout=900)
    wait_ready(timeout_s=600)
    for doc in written:
        resp = api.client.get(f"/v1/documents/{doc}")
        assert resp.status_code == 200, resp.text
    kept = {f"Kept {i}" for i in range(5)}
    eventually(lambda: kept <= set(found_titles(api, "acknowledged write ferns")), within=180)
