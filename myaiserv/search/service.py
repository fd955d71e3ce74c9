"""Search: validate, look in the result cache, read Elasticsearch (one ``_msearch`` per
page, through the store), fuse in our code, shape the page.

Modes: ``bm25`` (text), ``vector`` (approximate kNN on the embedding) and ``hybrid``
(both lists fused with reciprocal rank fusion). Without query text, a search lists the
entries that match its filters, newest first.

Paging reads every page from one point in time (opened with the first page), so hits are
returned exactly once even while documents are being added. bm25 pages with
``search_after`` without a depth limit; vector and hybrid take the same ``window`` of hits
from each list on every page, fuse them, and slice the page out of the fused list.

The service only orchestrates: ``plan`` (checks), ``cache``, ``store`` (every
Elasticsearch call and its failures), ``query`` (bodies), ``page`` (fusion and shaping).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import msgspec

from myaiserv import metrics
from myaiserv.config import SearchSettings
from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.kit.cursor import fingerprint
from myaiserv.search import cache as result_cache
from myaiserv.search import page
from myaiserv.search import query as q
from myaiserv.search.cursor import Cursor, decode
from myaiserv.search.plan import Plan, plan_of
from myaiserv.search.schemas import SearchRequest, SearchResponse
from myaiserv.search.store import SearchStore


class SearchService:
    def __init__(
        self,
        *,
        store: SearchStore,
        cache: result_cache.ResultCache,
        embedder: CachedEmbedder,
        settings: SearchSettings,
        tenant_id: UUID,
    ) -> None:
        self.store = store
        self.cache = cache
        self.embedder = embedder
        self.settings = settings
        self.tenant_id = str(tenant_id)

    def plan(self, req: SearchRequest) -> Plan:
        return plan_of(req, self.settings, self.tenant_id)

    async def search(self, req: SearchRequest, *, use_cache: bool = True) -> tuple[bytes, str]:
        """The response body (JSON) and the cache outcome: hit, miss or bypass."""
        plan = self.plan(req)
        request, paging_fp = self._fingerprinted(req)
        cursor = decode(req.cursor, paging_fp) if req.cursor else None
        cacheable = req.cursor is None and use_cache and self.settings.cache_ttl_s > 0
        key = None
        if cacheable:
            key, cached = await self.cache.lookup(
                self.tenant_id, plan.kinds, fingerprint(self.tenant_id, request)
            )
            if cached is not None:
                result_cache.record("hit")
                return cached, "hit"
        await self.store.check(plan.kinds)
        response = await self._page(plan, cursor, paging_fp)
        body = msgspec.json.encode(response)
        if key is not None:
            await self.cache.put(key, body)
            result_cache.record("miss")
            return body, "miss"
        result_cache.record("bypass")
        return body, "bypass"

    async def retrieve(self, plan: Plan) -> SearchResponse:
        """The first page of a planned search as objects, not cached and not pageable
        (retrieval for RAG, which plans when it checks a call and has an answer cache of
        its own)."""
        await self.store.check(plan.kinds)
        return await self._page(plan, None, fp="", paging=False)

    def _fingerprinted(self, req: SearchRequest) -> tuple[dict[str, Any], str]:
        """The normalised request without its cursor (the cache key's material), and the
        fingerprint a cursor must carry: the same request whatever the page size."""
        request = result_cache.normalise(msgspec.to_builtins(req))
        request.pop("cursor", None)
        paging = {k: v for k, v in request.items() if k != "size"}
        return request, fingerprint(self.tenant_id, paging)

    async def _page(
        self, plan: Plan, cursor: Cursor | None, fp: str, *, paging: bool = True
    ) -> SearchResponse:
        """One page: the first, or the one ``cursor`` points to. ``paging=False``: the
        first page only, read from the live indices (no point in time is opened, no
        cursor returned)."""
        started = time.perf_counter()
        vector, pit = await self._vector_and_pit(plan, cursor, paging=paging)
        if plan.needs_vector:
            metrics.SEARCH_STAGE.labels("embed", plan.mode).observe(time.perf_counter() - started)
        # A cursor's pages all read the window its first page read.
        depth = cursor.window if cursor and cursor.window else plan.window
        bodies = q.page_bodies(
            plan, vector, depth=depth, after=cursor.after if cursor else None, in_pit=bool(pit)
        )
        sent = time.perf_counter()
        answers = await self.store.msearch(bodies, plan.kinds, pit, paging=cursor is not None)
        received = time.perf_counter()
        metrics.SEARCH_STAGE.labels("elasticsearch", plan.label).observe(received - sent)
        metrics.SEARCH_ES_TOOK.labels(plan.label).observe(answers.took_ms / 1000)
        response = page.shape(
            plan,
            answers.by_name,
            offset=cursor.offset if cursor else 0,
            depth=depth,
            pit=answers.pit,
            fingerprint=fp,
        )
        if response.next_cursor is None and answers.pit is not None:
            await self.store.close_pit(answers.pit)
        done = time.perf_counter()
        metrics.SEARCH_STAGE.labels("fusion", plan.label).observe(done - received)
        metrics.SEARCH_STAGE.labels("total", plan.label).observe(done - started)
        return response

    async def _vector_and_pit(
        self, plan: Plan, cursor: Cursor | None, *, paging: bool
    ) -> tuple[list[float] | None, str | None]:
        """The query's embedding (when the mode needs one) and the point in time to read
        (the cursor's, or a new one for a first page that may be paged), the point in
        time opened while the query is embedded."""
        opening = None
        if paging and cursor is None:
            opening = asyncio.ensure_future(self.store.open_pit(plan.kinds))
        try:
            vector = None
            if plan.needs_vector:
                vector = (await self.embedder.encode_query(plan.query)).tolist()
            pit = cursor.pit if cursor else (await opening if opening else None)
        except BaseException:
            if opening is not None:
                opening.cancel()
            raise
        return vector, pit
