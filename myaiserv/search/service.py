"""Search: validate, look in the result cache, read Elasticsearch (one ``_msearch`` per
page, through the store), fuse in our code, shape the page.

Modes: ``bm25`` (text), ``vector`` (approximate kNN on the embedding) and ``hybrid``
(both lists fused: normalised scores summed, or reciprocal ranks; ``search.fusion``).
Without query text, a search lists the entries that match its filters, newest first.

Paging holds no Elasticsearch search context between requests: the first page reads the
``window`` of each list from the live indices and fuses it, and when there is another page
keeps the window's order in Redis behind a signed cursor (``search.window``); later pages
slice it and read their hits by id, so each hit comes exactly once, in one order, even
while documents are added. Vector and hybrid end with the window; bm25 and browsing go on
past it within a point in time that the first page past the window opens (excluding the
window's hits) and the last closes, so only clients that page that deep hold one.

The service only orchestrates: ``plan`` (checks), ``cache``, ``store`` (every
Elasticsearch call and its failures), ``query`` (bodies), ``page`` (fusion and shaping).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from myaiserv import metrics
from myaiserv.config import SearchSettings
from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.embeddings.registry import Embedders, ModelUnavailableError
from myaiserv.errors import DependencyUnavailableError
from myaiserv.kit.cursor import InvalidCursorError, fingerprint
from myaiserv.search import cache as result_cache
from myaiserv.search import page
from myaiserv.search import query as q
from myaiserv.search.cursor import Cursor, CursorExpiredError, decode
from myaiserv.search.plan import Plan, plan_of
from myaiserv.search.schemas import SearchRequest, SearchResponse
from myaiserv.search.store import Answers, SearchStore
from myaiserv.search.window import Window, WindowStore


@dataclass(frozen=True)
class Chunks:
    """A page of one document's chunks: each its ``_source`` (chunk_id, position, heading,
    text)."""

    items: list[dict[str, Any]]
    total: int
    next_after: int | None


class SearchService:
    def __init__(
        self,
        *,
        store: SearchStore,
        cache: result_cache.ResultCache,
        windows: WindowStore,
        embedder: CachedEmbedder,
        embedders: Embedders,
        settings: SearchSettings,
        cursor_key: bytes,
        tenant_id: UUID,
    ) -> None:
        self.store = store
        self.cache = cache
        self.windows = windows
        self.cursor_key = cursor_key
        self.embedder = embedder  # the tenant's cache, for whichever model the index names
        self.embedders = embedders
        self.settings = settings
        self.tenant_id = str(tenant_id)

    def plan(self, req: SearchRequest) -> Plan:
        return plan_of(req, self.settings, self.tenant_id)

    async def search(self, req: SearchRequest, *, use_cache: bool = True) -> tuple[bytes, str]:
        """The response body (JSON) and the cache outcome: hit, miss or bypass."""
        plan = self.plan(req)
        request, paging_fp = self._fingerprinted(req, plan)
        cursor = decode(req.cursor, paging_fp, self.cursor_key) if req.cursor else None
        cacheable = req.cursor is None and use_cache and self.settings.cache_ttl_s > 0
        key = None
        if cacheable:
            key, cached = await self.cache.lookup(
                self.tenant_id, plan.kinds, fingerprint(self.tenant_id, request)
            )
            if cached is not None:
                result_cache.record("hit")
                return cached, "hit"
        model = await self.store.check(plan.kinds)
        response = await self._page(plan, cursor, paging_fp, model=model)
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
        model = await self.store.check(plan.kinds)
        return await self._page(plan, None, fp="", model=model, paging=False)

    async def chunks(
        self, document_id: UUID, *, after: int | None = None, size: int = 100
    ) -> Chunks:
        """A document's chunks as indexed, in the order of its text: ``size`` of them
        after position ``after``; ``next_after`` is where the next page starts (None on
        the last page)."""
        await self.store.check(["documents"])
        answer = await self.store.search(
            "documents", q.chunks_body(self.tenant_id, str(document_id), after=after, size=size)
        )
        hits = answer["hits"]["hits"]
        items = [dict(h["_source"]) for h in hits]
        following = int(items[-1]["position"]) if len(items) == size else None
        return Chunks(
            items=items, total=int(answer["hits"]["total"]["value"]), next_after=following
        )

    def _fingerprinted(self, req: SearchRequest, plan: Plan) -> tuple[dict[str, Any], str]:
        """The normalised request without its cursor (the cache key's material), and the
        fingerprint a cursor must carry: the same request whatever the page size. The
        fusion applied is part of both, a default from the settings too."""
        request = result_cache.normalise(msgspec.to_builtins(req))
        request.pop("cursor", None)
        if plan.mode == "hybrid":
            request["fusion"] = plan.fusion
            request["normalizer"] = plan.normalizer if plan.fusion == "linear" else None
        paging = {k: v for k, v in request.items() if k != "size"}
        return request, fingerprint(self.tenant_id, paging)

    async def _page(
        self, plan: Plan, cursor: Cursor | None, fp: str, *, model: str, paging: bool = True
    ) -> SearchResponse:
        """One page: the first, or the one ``cursor`` points to. ``model``: the one that
        built the indices read (the query is embedded with it). ``paging=False``: the
        first page only (no window is kept, no cursor returned)."""
        started = time.perf_counter()
        if cursor is None:
            response = await self._first(plan, fp, model=model, paging=paging)
        else:
            kept = await self.windows.get(self.tenant_id, cursor.window)
            if kept is None:
                raise CursorExpiredError
            if cursor.offset < len(kept.entries):
                response = await self._within(plan, cursor, kept, fp)
            else:
                response = await self._beyond(plan, cursor, kept, fp)
        metrics.SEARCH_STAGE.labels("total", plan.label).observe(time.perf_counter() - started)
        return response

    async def _first(self, plan: Plan, fp: str, *, model: str, paging: bool) -> SearchResponse:
        """Read the window from the live indices (no point in time), fuse it, and keep it
        in Redis when there is another page."""
        started = time.perf_counter()
        vector = None
        if plan.needs_vector:
            embedder = await self._embedder_of(model)
            vector = (await embedder.encode_query(plan.query)).tolist()
            metrics.SEARCH_STAGE.labels("embed", plan.mode).observe(time.perf_counter() - started)
        depth = plan.window if paging or plan.windowed else plan.size
        answers = await self._msearch(plan, q.page_bodies(plan, vector, depth=depth), None)
        received = time.perf_counter()
        fused, kept = page.window(plan, answers.by_name, depth=depth)
        metrics.SEARCH_STAGE.labels("fusion", plan.label).observe(time.perf_counter() - received)
        cursor = None
        if paging and (len(fused) > plan.size or kept.more):
            token = await self.windows.put(self.tenant_id, kept)
            if token is not None:
                cursor = Cursor(token, offset=plan.size).encode(fp, self.cursor_key)
        return page.response(plan, fused[: plan.size], kept, cursor)

    async def _embedder_of(self, model: str) -> CachedEmbedder:
        """The tenant's cached embedder for ``model``; 503 when this machine lacks it."""
        try:
            return self.embedder.with_model(await self.embedders.get(model))
        except ModelUnavailableError as exc:
            raise DependencyUnavailableError(
                "embeddings", f"{exc}; run `myaiserv models install {model}`", retry_after_s=60
            ) from exc

    async def _within(self, plan: Plan, cursor: Cursor, kept: Window, fp: str) -> SearchResponse:
        """A page inside the stored window: its entries, read again by id."""
        end = cursor.offset + plan.size
        entries = kept.entries[cursor.offset : end]
        body = q.hits_body(plan, [e.id for e in entries])
        answers = await self._msearch(plan, {"hits": body}, None)
        hits = page.restored(entries, answers.by_name["hits"])
        following = min(end, len(kept.entries))
        more = end < len(kept.entries) or kept.more
        token = Cursor(cursor.window, offset=following).encode(fp, self.cursor_key)
        return page.response(plan, hits, kept, token if more else None)

    async def _beyond(self, plan: Plan, cursor: Cursor, kept: Window, fp: str) -> SearchResponse:
        """A bm25 or browsing page past the window: within a point in time, opened by the
        first such page (only clients that page this deep hold one) and closed by the
        last."""
        if not kept.more:
            raise InvalidCursorError
        pit = cursor.pit or await self.store.open_pit(plan.kinds)
        body = q.beyond_body(plan, kept.ids(), cursor.after)
        try:
            answers = await self._msearch(plan, {"page": body}, pit, paging=cursor.pit is not None)
        except Exception:
            if cursor.pit is None:  # opened for this page: nobody else will close it
                await self.store.close_pit(pit)
            raise
        answer = answers.by_name["page"]
        hits = page.beyond(plan, answer)
        last = answer["hits"]["hits"][-1]["sort"] if len(hits) == plan.size else None
        if last is None:
            if answers.pit is not None:
                await self.store.close_pit(answers.pit)
            return page.response(plan, hits, kept, None)
        following = Cursor(cursor.window, cursor.offset, pit=answers.pit, after=last)
        return page.response(plan, hits, kept, following.encode(fp, self.cursor_key))

    async def _msearch(
        self,
        plan: Plan,
        bodies: dict[str, dict[str, Any]],
        pit: str | None,
        *,
        paging: bool = False,
    ) -> Answers:
        sent = time.perf_counter()
        answers = await self.store.msearch(bodies, plan.kinds, pit, paging=paging)
        metrics.SEARCH_STAGE.labels("elasticsearch", plan.label).observe(time.perf_counter() - sent)
        metrics.SEARCH_ES_TOOK.labels(plan.label).observe(answers.took_ms / 1000)
        return answers
