"""Search: validate, look in the result cache, read Elasticsearch (one ``_msearch`` per
page), fuse in our code, shape the page.

Modes: ``bm25`` (text), ``vector`` (approximate kNN on the embedding) and ``hybrid``
(both lists fused with reciprocal rank fusion). Without query text, a search lists the
entries that match its filters, newest first.

Paging reads every page from one point in time (opened with the first page), so hits are
returned exactly once even while documents are being added. bm25 pages with
``search_after`` without a depth limit; vector and hybrid take the same ``window`` of hits
from each list on every page, fuse them, and slice the page out of the fused list.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from uuid import UUID

import msgspec
from elasticsearch import ApiError, AsyncElasticsearch

from myaiserv import metrics
from myaiserv.errors import AppError, DependencyUnavailableError
from myaiserv.kit.validation import InvalidInputError, reject_nul
from myaiserv.logging import get_logger
from myaiserv.resources import Resources
from myaiserv.search import cache as result_cache
from myaiserv.search import fusion
from myaiserv.search import query as q
from myaiserv.search.cursor import Cursor, decode, fingerprint
from myaiserv.search.schemas import (
    FacetBucket,
    HistogramBucket,
    Hit,
    SearchRequest,
    SearchResponse,
    Total,
)

log = get_logger(__name__)


class CursorExpiredError(AppError):
    status_code = 410
    title = "Cursor expired"

    def __init__(self) -> None:
        super().__init__(
            "cursor: the search's point in time has expired; repeat the search without cursor",
            extra={"errors": [{"field": "cursor", "message": "expired"}]},
        )


class SearchService:
    def __init__(self, resources: Resources, tenant_id: UUID) -> None:
        self.resources = resources
        self.settings = resources.settings.search
        self.es: AsyncElasticsearch = resources.es
        self.tenant_id = str(tenant_id)
        self.cache = result_cache.ResultCache(
            resources.redis, resources.settings.es.index_prefix, self.settings.cache_ttl_s
        )

    # -- validation ---------------------------------------------------------------------

    def plan(self, req: SearchRequest) -> q.Plan:
        cfg = self.settings
        reject_nul(req.query, "query")
        if len(req.query) > cfg.max_query_chars:
            raise InvalidInputError("query", f"longer than {cfg.max_query_chars} characters")
        kinds = q.kinds_of(req.kinds)
        meta_fields = dict(cfg.metadata_fields)
        filters = q.filter_clauses(self.tenant_id, req.filters, kinds, meta_fields)
        if not req.query.strip() and len(filters) == 1:
            raise InvalidInputError("query", "give query text, filters, or both")
        size = cfg.default_size if req.size is None else req.size
        if not 1 <= size <= cfg.max_size:
            raise InvalidInputError("size", f"must be between 1 and {cfg.max_size}")
        if req.rrf_k is not None and not 1 <= req.rrf_k <= 10_000:
            raise InvalidInputError("rrf_k", "must be between 1 and 10000")
        if req.num_candidates is not None and not 1 <= req.num_candidates <= 10_000:
            raise InvalidInputError("num_candidates", "must be between 1 and 10000")
        weights = {"bm25": 1.0, "vector": 1.0}
        if req.weights is not None:
            weights = {"bm25": req.weights.bm25, "vector": req.weights.vector}
            for name, value in weights.items():
                if not 0 <= value <= 100:
                    raise InvalidInputError(f"weights.{name}", "must be between 0 and 100")
            if not any(weights.values()):
                raise InvalidInputError("weights", "at least one weight must be above 0")
        window = cfg.rank_window if req.window is None else req.window
        if not 1 <= window <= cfg.max_window:
            raise InvalidInputError("window", f"must be between 1 and {cfg.max_window}")
        histogram = (req.histogram.field, req.histogram.interval) if req.histogram else None
        return q.Plan(
            tenant_id=self.tenant_id,
            query=req.query.strip(),
            kinds=kinds,
            mode=req.mode,
            size=size,
            filters=filters,
            facets=q.facet_fields(req.facets, kinds, meta_fields),
            histogram=histogram,
            fields=q.returned_fields(req.fields, kinds),
            highlight=req.highlight,
            collapse=req.collapse,
            window=max(window, size),
            rrf_k=req.rrf_k or cfg.rrf_k,
            weights=weights,
            num_candidates=req.num_candidates or cfg.num_candidates,
            stemmer=cfg.app_stemmer,
            meta_fields=meta_fields,
        )

    # -- search -------------------------------------------------------------------------

    async def search(self, req: SearchRequest, *, use_cache: bool = True) -> tuple[bytes, str]:
        """The response body (JSON) and the cache outcome: hit, miss or bypass."""
        plan = self.plan(req)
        request, paging_fp = self._fingerprinted(req)
        cacheable = req.cursor is None and use_cache and self.settings.cache_ttl_s > 0
        key = None
        if cacheable:
            key = await self.cache.key(
                self.tenant_id, plan.kinds, fingerprint(self.tenant_id, request)
            )
            if key is not None and (page := await self.cache.get(key)) is not None:
                result_cache.record("hit")
                return page, "hit"
        await self.resources.index_guard.check(self.resources.es, plan.kinds)
        response = await self._search(plan, req.cursor, paging_fp)
        body = msgspec.json.encode(response)
        if key is not None:
            await self.cache.put(key, body)
            result_cache.record("miss")
            return body, "miss"
        result_cache.record("bypass")
        return body, "bypass"

    async def retrieve(self, req: SearchRequest) -> SearchResponse:
        """One page of hits as objects, not cached (retrieval for RAG: the answer cache
        sits above it)."""
        plan = self.plan(req)
        await self.resources.index_guard.check(self.resources.es, plan.kinds)
        _, paging_fp = self._fingerprinted(req)
        return await self._search(plan, None, paging_fp, paging=False)

    def _fingerprinted(self, req: SearchRequest) -> tuple[dict[str, Any], str]:
        """The normalised request without its cursor (the cache key's material), and the
        fingerprint a cursor must carry: the same request whatever the page size."""
        request = result_cache.normalise(msgspec.to_builtins(req))
        request.pop("cursor", None)
        paging = {k: v for k, v in request.items() if k != "size"}
        return request, fingerprint(self.tenant_id, paging)

    async def _embed(self, text: str) -> list[float]:
        vector = await self.resources.embedder.encode_query(text)
        return vector.tolist()

    async def _open_pit(self, kinds: list[str]) -> str:
        aliases = ",".join(self.resources.indices.alias(k) for k in kinds)
        resp = await self.es.open_point_in_time(
            index=aliases, keep_alive=self.settings.pit_keep_alive
        )
        return resp["id"]

    async def _close_pit(self, pit: str) -> None:
        with contextlib.suppress(ApiError):  # expired already: nothing to release
            await self.es.close_point_in_time(id=pit)

    async def _search(
        self, plan: q.Plan, raw_cursor: str | None, fp: str, *, paging: bool = True
    ) -> SearchResponse:
        """One page. ``paging=False``: the first page only, read from the live indices
        (no point in time is opened, no cursor returned)."""
        cursor = decode(raw_cursor, fp) if raw_cursor else None
        started = time.perf_counter()
        has_text = bool(plan.query)
        vector_needed = has_text and plan.mode != "bm25"
        window_mode = has_text and (plan.mode != "bm25" or plan.collapse)

        pit_task = (
            asyncio.ensure_future(self._open_pit(plan.kinds)) if paging and not cursor else None
        )
        try:
            vector = await self._embed(plan.query) if vector_needed else None
            if vector_needed:
                metrics.SEARCH_STAGE.labels("embed", plan.mode).observe(
                    time.perf_counter() - started
                )
            pit = cursor.pit if cursor else (await pit_task if pit_task else None)
        except ApiError as exc:
            raise self._unavailable(exc) from exc
        except BaseException:
            if pit_task is not None:
                pit_task.cancel()
            raise

        offset = cursor.offset if cursor else 0
        end = offset + plan.size
        # Every page of a search fuses the same window: the fused order is then the same
        # on every page (fusing deeper lists would reorder it), so paging is exact.
        depth = cursor.window if cursor and cursor.window else plan.window

        bodies: dict[str, dict[str, Any]] = {}
        if window_mode:
            if plan.mode in ("bm25", "hybrid"):
                bodies["bm25"] = q.bm25_body(plan, depth)
            if plan.mode in ("vector", "hybrid"):
                bodies["vector"] = q.knn_body(plan, vector or [], depth)
        else:
            body = q.bm25_body(plan, plan.size) if has_text else q.browse_body(plan, plan.size)
            first = {"_score": "desc"} if has_text else {"updated_at": "desc"}
            # _shard_doc (the cheapest total order) exists only within a point in time.
            body["sort"] = [first, {"_shard_doc": "asc"}] if pit else [first]
            if cursor and cursor.after:
                body["search_after"] = cursor.after
            bodies["page"] = body
        if plan.facets or plan.histogram:
            bodies["summary"] = q.summary_body(plan, vector, depth)

        keep_alive = self.settings.pit_keep_alive
        searches: list[dict[str, Any]] = []
        aliases = ",".join(self.resources.indices.alias(k) for k in plan.kinds)
        for body in bodies.values():
            if pit is None:
                searches += [{"index": aliases}, body]
            else:
                searches += [{}, {**body, "pit": {"id": pit, "keep_alive": keep_alive}}]
        sent = time.perf_counter()
        try:
            resp = await self.es.msearch(searches=searches)
        except ApiError as exc:
            raise self._unavailable(exc) from exc
        fused_from = time.perf_counter()
        results = dict(zip(bodies, resp["responses"], strict=True))
        mode = plan.mode if has_text else "browse"
        metrics.SEARCH_STAGE.labels("elasticsearch", mode).observe(fused_from - sent)
        took = max((r.get("took", 0) for r in results.values()), default=0)
        metrics.SEARCH_ES_TOOK.labels(mode).observe(took / 1000)
        for name, result in results.items():
            if "error" in result:
                self._raise(result, cursor, name)
        new_pit = next((r["pit_id"] for r in results.values() if "pit_id" in r), pit)

        if window_mode:
            lists = {
                name: fusion.dedupe(
                    results[name]["hits"]["hits"],
                    fusion.document_key if plan.collapse else fusion.hit_key,
                )
                for name in ("bm25", "vector")
                if name in results
            }
            if plan.mode == "hybrid":
                fused = fusion.rrf(
                    lists,
                    k=plan.rrf_k,
                    weights=plan.weights,
                    key=fusion.document_key if plan.collapse else fusion.hit_key,
                )
            else:
                (name,) = lists
                fused = fusion.single(name, lists[name])
            page = fused[offset:end]
            more = end < len(fused)
            more = more and new_pit is not None
            next_cursor = Cursor(new_pit, fp, offset=end, window=depth) if more else None
        else:
            hits = results["page"]["hits"]["hits"]
            name = "bm25" if has_text else "browse"
            page = fused = fusion.single(name, hits)
            more = len(hits) == plan.size
            more = more and new_pit is not None
            next_cursor = Cursor(new_pit, fp, after=hits[-1]["sort"]) if more else None

        total = self._total(results, len(fused) if window_mode else 0)
        if next_cursor is None and new_pit is not None:
            await self._close_pit(new_pit)
        response = SearchResponse(
            mode=plan.mode if has_text else "bm25",
            hits=[self._hit(f, plan) for f in page],
            total=total,
            facets=self._facets(results.get("summary"), plan),
            histogram=self._histogram(results.get("summary"), plan),
            next_cursor=next_cursor.encode() if next_cursor else None,
        )
        done = time.perf_counter()
        metrics.SEARCH_STAGE.labels("fusion", mode).observe(done - fused_from)
        metrics.SEARCH_STAGE.labels("total", mode).observe(done - started)
        return response

    @staticmethod
    def _unavailable(exc: ApiError) -> AppError:
        """Cluster-side failures (overload, missing index, 5xx) are a 503 to the client."""
        log.error("search request failed", status=exc.meta.status, error=str(exc)[:500])
        if exc.meta.status == 404:
            return DependencyUnavailableError(
                "elasticsearch", "the search indices do not exist; run `myaiserv index init`"
            )
        if exc.meta.status == 429 or exc.meta.status >= 500:
            return DependencyUnavailableError("elasticsearch", "the search cluster is overloaded")
        return AppError(f"search failed: {exc.message}")

    @staticmethod
    def _raise(result: dict[str, Any], cursor: Cursor | None, name: str) -> None:
        error = result["error"]
        kind = error.get("type", "") if isinstance(error, dict) else str(error)
        text = str(error)
        if cursor is not None and ("search_context_missing" in text or result.get("status") == 404):
            raise CursorExpiredError()
        log.error("search failed", part=name, error=text[:500])
        if result.get("status", 500) >= 500 or kind.endswith("unavailable_shards_exception"):
            raise DependencyUnavailableError("elasticsearch", "the search failed on the cluster")
        raise AppError(f"search failed: {kind}")

    @staticmethod
    def _total(results: dict[str, Any], fused: int) -> Total:
        """Exact with facets (the summary counts the union of both lists) and in bm25
        paging; otherwise a lower bound: the fused window, or the text matches."""
        if "summary" in results:
            value = results["summary"]["hits"]["total"]["value"]
            return Total(value=value, relation="eq")
        if "page" in results:
            total = results["page"]["hits"]["total"]
            return Total(value=total["value"], relation=total["relation"])
        bm25 = results["bm25"]["hits"]["total"]["value"] if "bm25" in results else 0
        return Total(value=max(bm25, fused), relation="gte")

    def _hit(self, entry: fusion.Fused, plan: q.Plan) -> Hit:
        source = dict(entry.hit["_source"])
        kind = source.pop("kind", "")
        type_ = source.pop("type", "")
        if kind != "documents" and "document_id" not in plan.fields:
            source.pop("document_id", None)
        highlights = entry.hit.get("highlight", {})
        return Hit(
            id=entry.hit["_id"],
            kind=kind,
            type=type_,
            score=round(entry.score, 6),
            ranks=entry.ranks,
            scores=entry.scores,
            fields=source,
            highlights=highlights,
        )

    @staticmethod
    def _facets(summary: dict[str, Any] | None, plan: q.Plan) -> dict[str, list[FacetBucket]]:
        if not summary or not plan.facets:
            return {}
        aggs = summary.get("aggregations", {})
        out: dict[str, list[FacetBucket]] = {}
        for name in plan.facets:
            buckets = aggs.get(f"facet:{name}", {}).get("buckets", [])
            counted = [
                FacetBucket(value=b.get("key_as_string", b["key"]), count=q.entity_count(b))
                for b in buckets
            ]
            out[name] = sorted(counted, key=lambda b: (-b.count, str(b.value)))
        return out

    @staticmethod
    def _histogram(summary: dict[str, Any] | None, plan: q.Plan) -> list[HistogramBucket] | None:
        if not summary or not plan.histogram:
            return None
        buckets = summary.get("aggregations", {}).get("histogram", {}).get("buckets", [])
        return [HistogramBucket(date=b["key_as_string"], count=q.entity_count(b)) for b in buckets]
