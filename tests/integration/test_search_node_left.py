"""A node leaving the cluster while a search runs on it: Elasticsearch fails a search over
to another shard copy only in its first phase, so a search whose later phase (``dfs_query``,
``fetch``) had to go back to the node that left fails with "all shards failed" although
another copy could answer. The store searches once more, and the second search starts on
copies that are there.

Elasticsearch here is the real local node behind a loopback proxy that answers the first
search as the cluster answers it at that moment (a node disconnected: the error a 3-node
topology gave when a node stopped under searches; or the node freed the search's context
as it closed its shards: a 404, which had read as "indices missing") and passes
everything else on.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from myaiserv.config import Settings
from myaiserv.errors import DependencyUnavailableError
from myaiserv.resources import Resources
from myaiserv.search.client import create_es_client
from myaiserv.search.store import SearchStore
from tests.support import search_store

pytestmark = pytest.mark.integration


# The client checks that it talks to Elasticsearch; the proxy's own answers say so too.
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
HOP = {"content-length", "transfer-encoding", "content-encoding", "connection"}


DISCONNECTED = {
    "type": "node_disconnected_exception",
    "reason": "[es01][127.0.0.1:9301][indices:data/read/search[phase/fetch/id]] disconnected",
}
# The node closing its shards as it stops frees the search's context there: a 404.
CONTEXT_FREED = {"type": "search_context_missing_exception", "reason": "No search context found"}


def node_left_error(phase: str, cause: dict[str, Any] = DISCONNECTED) -> dict[str, Any]:
    return {
        "root_cause": [cause],
        "type": "search_phase_execution_exception",
        "reason": "all shards failed",
        "phase": phase,
        "grouped": True,
        "failed_shards": [{"shard": 0, "index": "documents", "node": "es01", "reason": cause}],
    }


@asynccontextmanager
async def cluster_losing_a_node(
    upstream: str, fails: Callable[[str], bool], cause: dict[str, Any] = DISCONNECTED
) -> AsyncIterator[tuple[str, list[str]]]:
    """A proxy to ``upstream`` whose first request for which ``fails(path)`` is answered
    with the lost node's error (``cause``): (its URL, the paths it was asked for)."""
    asked: list[str] = []
    failed: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        if not failed and fails(request.path):
            failed.append(request.path)
            if request.path.endswith("/_msearch"):  # 200, the error inside
                status = 404 if cause is CONTEXT_FREED else 500
                error = {"error": node_left_error("fetch", cause), "status": status}
                return web.json_response({"took": 3, "responses": [error]}, headers=PRODUCT)
            error = {"error": node_left_error("dfs_query"), "status": 500}
            return web.json_response(error, status=500, headers=PRODUCT)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                upstream + request.path_qs,
                data=await request.read(),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            ) as resp,
        ):
            headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
            return web.Response(status=resp.status, body=await resp.read(), headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", asked
    finally:
        await runner.cleanup()


@asynccontextmanager
async def store_through(
    url: str, settings: Settings, resources: Resources
) -> AsyncIterator[SearchStore]:
    es = create_es_client(settings.model_copy(update={"es_url": [url]}))
    try:
        yield search_store(es, resources, timeout_s=5)
    finally:
        await es.close()


@pytest.mark.parametrize("cause", [DISCONNECTED, CONTEXT_FREED], ids=["disconnected", "freed"])
async def test_a_search_that_lost_a_node_runs_again_and_answers(
    settings: Settings, resources: Resources, cause: dict[str, Any]
) -> None:
    body = {"query": {"match_all": {}}, "size": 1}
    async with (
        cluster_losing_a_node(settings.es_url[0], lambda p: p.endswith("/_msearch"), cause) as (
            url,
            asked,
        ),
        store_through(url, settings, resources) as store,
    ):
        answers = await store.msearch({"all": body}, ["documents"], None)
    assert "hits" in answers.by_name["all"]
    assert [p for p in asked if p.endswith("/_msearch")] == ["/_msearch", "/_msearch"]

    # The runs' searches (one kind, exact totals) likewise.
    async with (
        cluster_losing_a_node(settings.es_url[0], lambda p: p.endswith("/_search")) as (
            url,
            asked,
        ),
        store_through(url, settings, resources) as store,
    ):
        found = await store.search("documents", body)
    assert "hits" in found
    assert len([p for p in asked if p.endswith("/_search")]) == 2


async def test_a_search_within_a_point_in_time_does_not_run_again(
    settings: Settings, resources: Resources
) -> None:
    """A point in time's contexts left with the node: the same search would fail the same
    way, so the first failure is the answer (a 503 saying when to retry)."""
    async with (
        cluster_losing_a_node(settings.es_url[0], lambda p: p.endswith("/_msearch")) as (
            url,
            asked,
        ),
        store_through(url, settings, resources) as store,
    ):
        pit = await store.open_pit(["documents"])
        try:
            with pytest.raises(DependencyUnavailableError) as caught:
                await store.msearch({"all": {"size": 1}}, ["documents"], pit)
        finally:
            await store.close_pit(pit)
    assert caught.value.status_code == 503
    assert caught.value.detail == "the search failed on the cluster"
    assert [p for p in asked if p.endswith("/_msearch")] == ["/_msearch"]
