"""The console's runs pages: search past runs (``/console/runs``, the query string is the
search, so a search is a shareable URL) and one run (``/console/runs/<id>``).

The search page turns its query string into the body ``POST /v1/runs/search`` takes and
sends it through the same ``RunSearchService``, so the API's validation applies: a bad
value is a 400 page naming the form field. Highlights come from the API already
HTML-escaped with ``<mark>`` tags; ``pages.highlighted`` re-sanitises them before they are shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
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

PAGE_SIZE = 25
SNIPPET_CHARS = 160
MAX_CONVERSATION_RUNS = 50
MAX_DOCUMENT_TITLES = 50  # distinct documents looked up for a run's chunks
# Filters that match any of their values: repeated in the query string, or comma-separated.
MULTI = ("model", "provider", "status", "prompt_name")
SINGLE = ("prompt_version", "conversation_id", "document_id", "trace_id")
# Range filters: the form's field -> the API's filter and bound.
RANGES: dict[str, tuple[str, str]] = {
    "from": ("created_at", "gte"),
    "to": ("created_at", "lte"),
    "latency_min": ("latency_ms", "gte"),
    "latency_max": ("latency_ms", "lte"),
    "cost_min": ("cost_usd", "gte"),
    "cost_max": ("cost_usd", "lte"),
    "tokens_min": ("total_tokens", "gte"),
    "tokens_max": ("total_tokens", "lte"),
}
FORM_FIELDS = ("q", *MULTI, *SINGLE, *RANGES, "sort", "order")
SORTS = ("relevance", "time", "latency", "cost")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MSGSPEC_PATH = re.compile(r"at `\$\.([^`]+)`")


# -- the query string as a search -------------------------------------------------------


@dataclass
class SearchForm:
    """The search as the form and the URL hold it: each field's values as strings."""

    values: dict[str, list[str]]
    cursor: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, Sequence[str]]) -> SearchForm:
        values: dict[str, list[str]] = {}
        for name in FORM_FIELDS:
            given = [v.strip() for v in params.get(name, [])]
            if name in MULTI:
                given = [part.strip() for v in given for part in v.split(",")]
            given = [v for v in given if v]
            if given:
                values[name] = given if name in MULTI else given[:1]
        cursor = next(iter(params.get("cursor", [])), "") or None
        return cls(values, cursor)

    def one(self, name: str) -> str:
        return self.values.get(name, [""])[0]

    def joined(self, name: str) -> str:
        return ", ".join(self.values.get(name, []))

    @property
    def filtered(self) -> bool:
        """Words or filters given (sorting alone narrows nothing)."""
        return bool(self.values.keys() - {"sort", "order"})

    @property
    def has_filters(self) -> bool:
        return bool(self.values.keys() - {"q", "sort", "order"})

    def pairs(self, changes: Mapping[str, list[str]] | None = None) -> list[tuple[str, str]]:
        values = {**self.values, **(changes or {})}
        return [(k, v) for k, vs in values.items() if vs for v in vs]

    def url(self, cursor: str | None = None, changes: Mapping[str, list[str]] | None = None) -> str:
        pairs = self.pairs(changes)
        if cursor:
            pairs.append(("cursor", cursor))
        return "/console/runs" + ("?" + urlencode(pairs) if pairs else "")

    def toggle(self, name: str, value: str) -> tuple[str, bool]:
        """The URL with ``value`` added to (or, when there, removed from) filter ``name``,
        from the first page; and whether it is there now."""
        current = self.values.get(name, [])
        active = value in current
        changed = [v for v in current if v != value] if active else [*current, value]
        return self.url(changes={name: changed}), active

    def request(self) -> RunSearchRequest:
        """The API's search body; its validation raises ``msgspec.ValidationError`` or
        ``InvalidInputError`` naming the API's field (``form_field`` maps it back)."""
        filters: dict[str, Any] = {name: self.values[name] for name in MULTI if name in self.values}
        for name in SINGLE:
            if name in self.values:
                filters[name] = self.one(name)
        for name, (api, bound) in RANGES.items():
            if name in self.values:
                value: str = self.one(name)
                if api == "created_at":
                    value = _utc(value, end_of_day=bound == "lte")
                filters.setdefault(api, {})[bound] = value
        body = {
            "query": self.one("q") or None,
            "filters": filters,
            "sort": self.one("sort") or None,
            "order": self.one("order") or None,
            "size": PAGE_SIZE,
            "cursor": self.cursor,
            "fields": ["input"],
            "aggregations": True,
        }
        return msgspec.convert(body, RunSearchRequest, strict=False)


def _utc(value: str, *, end_of_day: bool) -> str:
    """A time as the form's date/datetime-local inputs send it (no offset), read as UTC;
    a bare day ends at its last millisecond when it is the upper bound."""
    if DATE_ONLY.match(value):
        return f"{value}T23:59:59.999+00:00" if end_of_day else f"{value}T00:00:00+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value  # the API's validation names it
    return value if parsed.utcoffset() is not None else value + "+00:00"


def form_field(api_field: str) -> str:
    """The form field an API error names: ``filters.latency_ms.gte`` -> ``latency_min``,
    ``filters.status[0]`` -> ``status``, ``query`` -> ``q``."""
    name = re.sub(r"\[\d+\]", "", api_field.removeprefix("$.").removeprefix("filters."))
    if name == "query":
        return "q"
    for form, (api, bound) in RANGES.items():
        if name == f"{api}.{bound}":
            return form
    for form, (api, _) in RANGES.items():
        if name.split(".")[0] == api:
            return form
    return name


def validation_error(exc: msgspec.ValidationError | InvalidInputError) -> tuple[str, str]:
    """(form field, message) of a refused search."""
    if isinstance(exc, InvalidInputError):
        return form_field(exc.field), exc.message
    text = str(exc)
    found = MSGSPEC_PATH.search(text)
    message = MSGSPEC_PATH.sub("", text).rstrip(" -")
    return (form_field(found.group(1)) if found else "q"), message


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
