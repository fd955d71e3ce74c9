"""The console's runs pages: search past runs (``/console/runs``, the query string is the
search, so a search is a shareable URL) and one run (``/console/runs/<id>``).

The search page turns its query string into the body ``POST /v1/runs/search`` takes
(``run_search``) and sends it through the same ``RunSearchService``, so the API's
validation applies: a bad value is a 400 page naming the form field. Highlights come from
the API already HTML-escaped with ``<mark>`` tags; ``pages.highlighted`` re-sanitises
them before they are shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.response import Template
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.console.pages import highlighted, page
from myaiserv.console.run_search import RANGES, SORTS, SearchForm, validation_error
from myaiserv.documents.service import DocumentService
from myaiserv.errors import DependencyUnavailableError, NotFoundError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.resources import Resources
from myaiserv.runs.controller import provide_run_search_service, to_out
from myaiserv.runs.schemas import (
    RunHit,
    RunOut,
    RunSearchFilters,
    RunSearchRequest,
    RunSearchResponse,
)
from myaiserv.runs.search import RunSearchService
from myaiserv.runs.service import STATUSES, RunService

SNIPPET_CHARS = 160
MAX_CONVERSATION_RUNS = 50
MAX_DOCUMENT_TITLES = 50  # distinct documents looked up for a run's chunks

# -- what the pages show ----------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    value: str
    count: int
    href: str
    active: bool


@dataclass(frozen=True)
class Row:
    hit: RunHit
    snippet: Markup | str
    other: list[tuple[str, Markup]]  # highlights in output and error


def _row(hit: RunHit) -> Row:
    highlights = hit.highlights or {}
    text = hit.input if isinstance(hit.input, str) else ""
    snippet: Markup | str = (
        highlighted(highlights["input"][0])
        if highlights.get("input")
        else (text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else ""))
    )
    other = [
        (name, highlighted(highlights[name][0]))
        for name in ("output", "error")
        if highlights.get(name)
    ]
    return Row(hit, snippet, other)


def _charts(result: RunSearchResponse) -> dict[str, Any]:
    aggs = result.aggregations
    by_day = (aggs.by_day if aggs else None) or []
    by_model = (aggs.by_model if aggs else None) or []
    return {
        "per_day": [(d.day.isoformat(), d.count, d.errors > 0) for d in by_day],
        "cost_per_day": [(d.day.isoformat(), float(d.cost_usd)) for d in by_day],
        "per_model": [(m.model, m.count, bool(m.error_rate)) for m in by_model],
        "by_model": by_model,
        "totals": aggs.totals if aggs else None,
        "other_models": aggs.other_models_count if aggs else None,
    }


@dataclass(frozen=True)
class Message:
    role: str
    content: str


def messages_of(text: str) -> list[Message]:
    """A run's input as messages: a JSON list of ``{role, content}`` (a chat call logged
    as such), else one user message holding the text as it is."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError:
            items = None
        if (
            isinstance(items, list)
            and items
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in items)
        ):
            return [
                Message(
                    m["role"],
                    m["content"]
                    if isinstance(m.get("content"), str)
                    else json.dumps(m.get("content"), indent=2, ensure_ascii=False),
                )
                for m in items
            ]
    return [Message("user", text)]


@dataclass
class ChunkView:
    id: str
    href: str
    cited: bool
    retrieved: bool
    document_id: UUID | None = None
    position: str = ""
    document_title: str | None = None
    document_gone: bool = False
    runs_href: str = ""


@dataclass
class RunView:
    run: RunOut
    messages: list[Message]
    chunks: list[ChunkView] = field(default_factory=list)
    metadata: str = ""
    prompt_href: str | None = None
    conversation_runs: list[RunHit] = field(default_factory=list)
    conversation_error: str = ""
    trace_href: str | None = None  # the run's trace in the trace store's UI (tracing.ui_url)


def chunk_views(retrieved: list[str], cited: list[str]) -> list[ChunkView]:
    """Retrieved chunks in their order, then cited ones not retrieved; ids of ours
    (``<document id>:<position>:<digest>``) name their document."""
    cited_set = set(cited)
    retrieved_set = set(retrieved)
    views: list[ChunkView] = []
    for chunk_id in dict.fromkeys([*retrieved, *cited]):
        view = ChunkView(
            id=chunk_id,
            href=f"/console/chunks/{quote(chunk_id, safe=':')}",
            cited=chunk_id in cited_set,
            retrieved=chunk_id in retrieved_set,
        )
        head, _, rest = chunk_id.partition(":")
        try:
            view.document_id = UUID(head)
        except ValueError:
            pass
        else:
            view.position = rest.partition(":")[0]
            view.runs_href = "/console/runs?" + urlencode({"document_id": str(view.document_id)})
        views.append(view)
    return views


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


class ConsoleRunsController(Controller):
    path = "/runs"
    include_in_schema = False
    guards = [requires("read")]  # noqa: RUF012

    @get("/")
    async def search(
        self, request: Request[Any, Any, Any], principal: Principal, resources: Resources
    ) -> Template:
        """Search this tenant's runs as ``POST /v1/runs/search`` does, with its
        aggregations for the cards and charts."""
        form = SearchForm.of({k: request.query_params.getall(k) for k in request.query_params})
        service: RunSearchService = await provide_run_search_service(resources, principal)
        common: dict[str, Any] = {
            "form": form,
            "statuses": STATUSES,
            "sorts": SORTS,
            "ranges": RANGES,
        }
        try:
            result = await service.search(form.request())
        except (msgspec.ValidationError, InvalidInputError) as exc:
            name, message = validation_error(exc)
            return page(
                request,
                "runs/search.html",
                section="runs",
                title="Runs",
                status_code=400,
                errors={name: message},
                error=f"{name}: {message}",
                result=None,
                rows=[],
                facets=[],
                next_url=None,
                first_url=form.url(),
                charts=None,
                **common,
            )
        model_facet = []
        for stats in (result.aggregations.by_model if result.aggregations else None) or []:
            href, active = form.toggle("model", stats.model)
            model_facet.append(Bucket(stats.model, stats.count, href, active))
        for value in form.values.get("model", []):
            if value not in {b.value for b in model_facet}:
                href, active = form.toggle("model", value)
                model_facet.append(Bucket(value, 0, href, active))
        return page(
            request,
            "runs/search.html",
            section="runs",
            title="Runs",
            errors={},
            error="",
            result=result,
            rows=[_row(hit) for hit in result.hits],
            facets=[("Model", model_facet)],
            next_url=form.url(result.next_cursor) if result.next_cursor else None,
            first_url=form.url() if form.cursor else None,
            charts=_charts(result),
            **common,
        )

    @get("/{run_id:uuid}")
    async def run(
        self,
        request: Request[Any, Any, Any],
        run_id: UUID,
        principal: Principal,
        resources: Resources,
        db_session: AsyncSession,
    ) -> Template:
        """One run of this tenant's (another tenant's id is a 404, as in the API)."""
        run = to_out(await RunService(db_session, principal.tenant_id).get(run_id))
        view = RunView(
            run=run,
            messages=messages_of(run.input),
            chunks=chunk_views(run.retrieved_chunk_ids, run.cited_chunk_ids),
            metadata=json.dumps(run.metadata, indent=2, ensure_ascii=False, sort_keys=True)
            if run.metadata
            else "",
            prompt_href=f"/console/prompts/{quote(run.prompt_name, safe='')}"
            if run.prompt_name
            else None,
            trace_href=resources.settings.tracing.trace_url(run.trace_id),
        )
        await self._titles(view, db_session, principal, resources)
        if run.conversation_id is not None:
            service = await provide_run_search_service(resources, principal)
            try:
                found = await service.search(
                    RunSearchRequest(
                        filters=RunSearchFilters(conversation_id=run.conversation_id),
                        sort="time",
                        order="asc",
                        size=MAX_CONVERSATION_RUNS,
                    )
                )
                view.conversation_runs = found.hits
            except DependencyUnavailableError as exc:
                view.conversation_error = exc.detail
        return page(
            request,
            "runs/run.html",
            section="runs",
            title=f"Run {run.id}",
            view=view,
            day=_day,
        )

    @staticmethod
    async def _titles(
        view: RunView, db_session: AsyncSession, principal: Principal, resources: Resources
    ) -> None:
        """Each chunk's document title, through the documents service (one lookup per
        distinct document, at most ``MAX_DOCUMENT_TITLES``)."""
        documents = DocumentService(db_session, principal.tenant_id, resources.settings)
        titles: dict[UUID, str | None] = {}
        for chunk in view.chunks:
            doc_id = chunk.document_id
            if doc_id is None:
                continue
            if doc_id not in titles:
                if len(titles) >= MAX_DOCUMENT_TITLES:
                    continue
                try:
                    titles[doc_id] = (await documents.get(doc_id)).title
                except NotFoundError:
                    titles[doc_id] = None
            chunk.document_title = titles[doc_id]
            chunk.document_gone = titles[doc_id] is None
