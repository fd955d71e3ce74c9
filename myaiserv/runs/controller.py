"""/v1/runs: inference calls logged by clients (or recorded by our RAG code); create, read,
update, delete, list, and search (over the runs index)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.db.models import IndexStatus, Run
from myaiserv.kit.index_state import index_state
from myaiserv.kit.validation import changes_of
from myaiserv.resources import Resources
from myaiserv.runs.schemas import (
    RunCreate,
    RunOut,
    RunPage,
    RunSearchRequest,
    RunSearchResponse,
    RunUpdate,
)
from myaiserv.runs.search import RunSearchService
from myaiserv.runs.service import RunService
from myaiserv.search.deps import search_store


def to_out(run: Run) -> RunOut:
    return RunOut(
        id=run.id,
        provider=run.provider,
        model=run.model,
        input=run.input,
        output=run.output,
        status=run.status,
        error=run.error,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
        total_tokens=run.total_tokens,
        latency_ms=run.latency_ms,
        time_to_first_token_ms=run.time_to_first_token_ms,
        cost_usd=float(run.cost_usd) if run.cost_usd is not None else None,
        prompt_name=run.prompt_name,
        prompt_version=run.prompt_version,
        prompt_version_id=run.prompt_version_id,
        conversation_id=run.conversation_id,
        retrieved_chunk_ids=list(run.retrieved_chunk_ids or []),
        cited_chunk_ids=list(run.cited_chunk_ids or []),
        metadata=dict(run.metadata_ or {}),
        started_at=run.started_at,
        finished_at=run.finished_at,
        trace_id=run.trace_id,
        version=run.version,
        created_at=run.created_at,
        updated_at=run.updated_at,
        **index_state(run),
    )


async def provide_run_service(db_session: AsyncSession, principal: Principal) -> RunService:
    return RunService(db_session, principal.tenant_id)


async def provide_run_search_service(
    resources: Resources, principal: Principal
) -> RunSearchService:
    return RunSearchService(
        search_store(resources),
        principal.tenant_id,
        max_page_size=resources.settings.limits.max_page_size,
    )


class RunController(Controller):
    path = "/v1/runs"
    tags = ["runs"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_run_service)}  # noqa: RUF012

    @post("/", guards=[requires("write")], status_code=201)
    async def create(
        self,
        data: RunCreate,
        service: NamedDependency[RunService],
    ) -> RunOut:
        """Log one inference call. ``total_tokens`` defaults to the sum of both parts;
        ``conversation_id`` and ``prompt_version_id`` must be this tenant's."""
        return to_out(await service.record(**msgspec.structs.asdict(data)))

    @get("/", guards=[requires("read")])
    async def list_runs(
        self,
        service: NamedDependency[RunService],
        resources: NamedDependency[Resources],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        status: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> RunPage:
        """Newest first, optionally filtered by ``provider``, ``model``, ``status`` and
        ``index_status``; pass ``next_cursor`` back as ``cursor`` for the next page."""
        limit = min(limit, resources.settings.limits.max_page_size)
        rows, next_cursor = await service.list(
            cursor=cursor,
            limit=limit,
            provider=provider,
            model=model,
            status=status,
            index_status=index_status,
        )
        return RunPage(items=[to_out(r) for r in rows], next_cursor=next_cursor)

    @post(
        "/search",
        guards=[requires("read")],
        status_code=200,
        dependencies={"search_service": Provide(provide_run_search_service)},
    )
    async def search(
        self,
        data: RunSearchRequest,
        search_service: NamedDependency[RunSearchService],
    ) -> RunSearchResponse:
        """Search this tenant's runs as indexed (a few seconds behind writes).

        ``query``: words matched (BM25) in input, output and error, taken as plain text,
        never as query syntax. ``filters``: all must hold; lists match any of their values;
        ranges take ``gte``/``gt``/``lte``/``lt``; ``document_id`` finds the runs that
        retrieved or cited that document's chunks. ``sort``: ``relevance`` (default with a
        query), ``time`` (default without), ``latency`` or ``cost``; ``order`` desc by
        default; runs without the key come last. Pass ``next_cursor`` back as ``cursor``,
        with the same query, filters and sort, for the next page. ``fields`` adds the full
        ``input``/``output``; hits of a query carry HTML-escaped ``highlights`` with
        ``<mark>`` tags. ``aggregations`` (``true``, or some of ``totals``, ``by_model``,
        ``by_day``) cover every matching run, not just this page: counts, error rates,
        token and cost sums, latency p50/p95 (HDR histograms, within 0.1%, nearest rank);
        days are UTC, with empty days between the first and the last included."""
        return await search_service.search(data)

    @get("/{run_id:uuid}", guards=[requires("read")])
    async def get_run(
        self,
        run_id: UUID,
        service: NamedDependency[RunService],
    ) -> RunOut:
        return to_out(await service.get(run_id))

    @patch("/{run_id:uuid}", guards=[requires("write")])
    async def update_run(
        self,
        run_id: UUID,
        data: RunUpdate,
        service: NamedDependency[RunService],
    ) -> RunOut:
        """Change some fields (status, output, error, token counts, latency, cost,
        finished_at, metadata); the run's version goes up by one."""
        changes = changes_of(data)
        return to_out(await service.update(run_id, changes))

    @delete("/{run_id:uuid}", guards=[requires("write")])
    async def delete_run(
        self,
        run_id: UUID,
        service: NamedDependency[RunService],
    ) -> None:
        await service.delete(run_id)
