"""Search contexts stay bounded under traffic: hundreds of distinct, uncached searches in
every mode leave no search context open on the node (each search's contexts live only
while Elasticsearch answers it), and paging still hands out every hit once.

The node's ``open_contexts`` counts every client's contexts, so this test needs a node no
other client pages on at the same time (CI, or a private stack: MYAISERV_STACK_DIR)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.resources import Resources
from tests.support import drain

pytestmark = pytest.mark.integration

WORDS = ["harbour", "ledger", "tide", "cargo", "ship", "crane", "pier", "storm", "ropes"]
SEARCHES = 300
CONCURRENCY = 4
# Searches in flight hold contexts while Elasticsearch answers them: at most one per shard
# of each searched index, per body of their _msearch. Far below what one point in time per
# search left open (a context per shard per search: over a thousand here).
BOUND = CONCURRENCY * 4 * 3 + 10
SETTLED = 2  # after the traffic, open contexts return to the baseline (within this)


async def open_contexts(resources: Resources) -> int:
    stats = await resources.es.nodes.stats(metric="indices", index_metric="search")
    return sum(n["indices"]["search"]["open_contexts"] for n in stats["nodes"].values())


async def test_open_contexts_stay_bounded_while_distinct_searches_run_and_paging_works(
    api: AsyncTestClient, resources: Resources
):
    docs = [
        {"title": f"Log {i}", "text": f"{' '.join(WORDS[i % 9 :] + WORDS[: i % 9])} entry {i}."}
        for i in range(40)
    ]
    resp = await api.post("/v1/documents/batch", json={"documents": docs})
    assert resp.status_code == 201, resp.text
    await drain(resources)
    baseline = await open_contexts(resources)

    samples: list[int] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(await open_contexts(resources))
            await asyncio.sleep(0.05)

    queries = itertools.cycle(itertools.permutations(WORDS, 2))
    modes = itertools.cycle(["hybrid", "bm25", "vector"])
    gate = asyncio.Semaphore(CONCURRENCY)
    statuses: list[int] = []
    cursors: list[str | None] = []

    async def one(n: int) -> None:
        a, b = next(queries)
        body = {"query": f"{a} {b} {n}", "mode": next(modes), "size": 5}
        async with gate:
            resp = await api.post("/v1/search", json=body, headers={"Cache-Control": "no-cache"})
        statuses.append(resp.status_code)
        cursors.append(resp.json().get("next_cursor"))

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(*(one(n) for n in range(SEARCHES)))
    finally:
        done.set()
        await sampler
    assert statuses == [200] * SEARCHES
    assert sum(c is not None for c in cursors) > SEARCHES // 2  # almost all could page on
    assert samples and max(samples) - baseline <= BOUND, (baseline, max(samples))
    assert await open_contexts(resources) - baseline <= SETTLED

    # Paging works with no context open: every hit once, all of the window.
    body: dict[str, Any] = {"query": "harbour cargo", "size": 7, "kinds": ["documents"]}
    seen = await _page_through(api, body)
    assert len(seen) == len(set(seen)) == 40
    assert await open_contexts(resources) - baseline <= SETTLED
    # A bm25 client paging past its window holds one point in time, closed by its last page.
    body = {**body, "mode": "bm25", "window": 10}
    seen = await _page_through(api, body, lambda: open_contexts(resources), baseline)
    assert len(seen) == len(set(seen)) == 40
    assert await open_contexts(resources) - baseline <= SETTLED


async def _page_through(
    api: AsyncTestClient,
    body: dict[str, Any],
    contexts: Callable[[], Awaitable[int]] | None = None,
    baseline: int = 0,
) -> list[str]:
    """Every hit of a search, page by page; with ``contexts``: pages past a bm25 window
    are read within one point in time, open until the last page."""
    seen: list[str] = []
    cursor = None
    while True:
        resp = await api.post("/v1/search", json={**body, "cursor": cursor} if cursor else body)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        seen += [h["id"] for h in page["hits"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        if contexts is not None and len(seen) > 10:
            assert await contexts() - baseline >= 1
