"""POST /v1/search: hybrid (BM25 + vector) search over the tenant's documents, prompts,
conversations and runs."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.resources import Resources
from myaiserv.search.deps import search_service
from myaiserv.search.schemas import SearchRequest, SearchResponse
from myaiserv.search.service import SearchService


async def provide_search_service(resources: Resources, principal: Principal) -> SearchService:
    return search_service(resources, principal.tenant_id)


def _no_cache(request: Request[Any, Any, Any]) -> bool:
    directives = request.headers.get("cache-control", "").lower()
    return "no-cache" in directives or "no-store" in directives


class SearchController(Controller):
    path = "/v1/search"
    tags = ["search"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_search_service)}  # noqa: RUF012

    # The service hands back the page already encoded (cached pages are served as stored
    # bytes), so the schema of the body is declared here rather than read off the return type.
    @post(
        "/",
        guards=[requires("read")],
        status_code=200,
        responses={
            200: ResponseSpec(SearchResponse, description="A page of hits", generate_examples=False)
        },
    )
    async def search(
        self,
        request: Request[Any, Any, Any],
        data: SearchRequest,
        service: NamedDependency[SearchService],
    ) -> Response[bytes]:
        """Search. ``mode``: ``hybrid`` (default; BM25 and kNN fused by ``fusion``:
        ``linear``, normalised scores summed, by default, or ``rrf``, reciprocal ranks;
        each hit states its rank and score in both lists), ``bm25`` or ``vector``.
        Filters, facets and a date histogram are computed inside Elasticsearch with the
        tenant filter. Pass ``next_cursor`` back as ``cursor`` for the next page (the same
        request otherwise). Pages are cached in Redis until a write to a searched kind
        becomes searchable; ``X-Cache`` says hit, miss or bypass (``Cache-Control:
        no-cache`` bypasses it)."""
        body, outcome = await service.search(data, use_cache=not _no_cache(request))
        return Response(
            content=body,
            media_type="application/json",
            headers={"X-Cache": outcome},
        )
