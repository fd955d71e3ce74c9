"""Fairness and isolation between callers, against the real stack: a maximal
``/v1/embeddings`` request does not hold up a search's query embedding, each input is
capped, and the embedding cache is kept per tenant."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from myaiserv.app import create_app
from myaiserv.config import EmbeddingSettings, Settings
from myaiserv.embeddings.model import Embedder
from myaiserv.rag.embeddings import MAX_EMBEDDING_INPUTS
from myaiserv.resources import Resources
from tests.support import TenantKey, eventually, make_tenant, served

pytestmark = pytest.mark.integration

CAP = 1500  # characters per input in these tests: well past the model's 256 tokens


BATCH_SIZE = EmbeddingSettings().batch_size


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def embedded_by(http: httpx.AsyncClient) -> float:
    """Texts the server's model has embedded so far (its /metrics)."""
    text = (await http.get("/metrics")).text
    found = re.search(r"^myaiserv_embedding_items_total ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found[1]) if found else 0.0


@pytest.fixture
async def capped(
    settings: Settings, embedder: Embedder, resources: Resources
) -> AsyncIterator[AsyncTestClient]:
    config = settings.model_copy(
        update={"embedding": settings.embedding.model_copy(update={"max_input_chars": CAP})}
    )
    async with AsyncTestClient(app=create_app(config, embedder=embedder)) as client:
        yield client


async def test_each_embeddings_input_is_capped_and_the_refusal_names_it(
    capped: AsyncTestClient, tenant: TenantKey
) -> None:
    texts = ["tide", "moon", ("tide " * CAP)[:CAP], "y" * (CAP + 1)]
    resp = await capped.post("/v1/embeddings", json={"input": texts}, headers=tenant.headers)
    # OpenAI's routes speak OpenAI's error envelope (a 400 naming the parameter).
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "input[3]" and str(CAP) in resp.text
    resp = await capped.post("/v1/embeddings", json={"input": texts[:3]}, headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    assert [d["index"] for d in resp.json()["data"]] == [0, 1, 2]
    assert resp.json()["usage"]["prompt_tokens"] > 256


async def test_a_search_is_not_queued_behind_a_maximal_embeddings_request(
    settings: Settings, tenant: TenantKey, tmp_path: Path
) -> None:
    """Against a real server process (the in-process test client runs one request at a
    time): a search sent while the largest request is being embedded is answered before
    that request's texts are all embedded."""
    # Every input at the cap and distinct (no cache, no de-duplication): the most model
    # work one request can ask for.
    filler = "the harbour logbook records tides, winds and every ship that called " * 40
    texts = [f"{i} {uuid.uuid4().hex} {filler}"[:CAP] for i in range(MAX_EMBEDDING_INPUTS)]
    cap = {"MYAISERV_EMBEDDING__MAX_INPUT_CHARS": str(CAP)}
    with served(settings, tmp_path, **cap) as (url, _):
        async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=600) as http:
            before = await embedded_by(http)
            batch = asyncio.create_task(http.post("/v1/embeddings", json={"input": texts}))

            async def under_way() -> bool:
                return await embedded_by(http) - before >= BATCH_SIZE

            # The batch is being encoded: its first pieces are done, most still queued.
            assert await eventually(under_way, within=300, interval=0.2)
            search = {"query": f"tides {uuid.uuid4().hex}", "mode": "vector", "size": 3}
            resp = await http.post("/v1/search", json=search)
            assert resp.status_code == 200, resp.text
            # The search had its query embedded and was answered while the batch still
            # had pieces waiting: it went ahead of them, not behind all 2048 texts.
            assert await embedded_by(http) - before < MAX_EMBEDDING_INPUTS
            assert not batch.done()
            batch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await batch


async def test_the_embedding_cache_is_per_tenant(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    other = await make_tenant(resources)
    body = {"query": f"spring tides {uuid.uuid4().hex}", "mode": "vector", "size": 3}
    fresh = {"Cache-Control": "no-cache"}  # past the result cache, to the query embedding

    async def search(who: TenantKey) -> tuple[float, float]:
        hits = sample("myaiserv_cache_requests_total", cache="embeddings", result="hit")
        misses = sample("myaiserv_cache_requests_total", cache="embeddings", result="miss")
        resp = await api.post("/v1/search", json=body, headers={**who.headers, **fresh})
        assert resp.status_code == 200, resp.text
        return (
            sample("myaiserv_cache_requests_total", cache="embeddings", result="hit") - hits,
            sample("myaiserv_cache_requests_total", cache="embeddings", result="miss") - misses,
        )

    assert await search(tenant) == (0, 1)
    assert await search(tenant) == (1, 0)  # the tenant's own repeat is a hit
    assert await search(other) == (0, 1)  # the same query from another tenant is not
    for who in (tenant, other):
        keys = [
            k
            async for k in resources.redis.scan_iter(
                match=f"{resources.settings.redis.namespace}:emb:*:t:{who.id}:*"
            )
        ]
        assert len(keys) == 1
