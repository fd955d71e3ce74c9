"""The console's landing page, the tenant at a glance: requests, errors, latency and cost
over the last days (the runs search's aggregations, as /v1/runs/search gives them), the
indexing backlog and the records that failed to index, with why. And two admin pages of
the settings: today's usage against the quotas (what /v1/usage answers) and the audit log
(what /v1/admin/audit answers, with its filters and cursor)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit.log import AuditQuery, find
from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.console.pages import page
from myaiserv.db.models import AuditEvent, Document, IndexStatus, Run
from myaiserv.documents.service import DocumentService
from myaiserv.kit.pagination import below, below_cursor
from myaiserv.kit.validation import InvalidInputError
from myaiserv.quotas.controller import UsageOut, provide_quota_service, usage_report
from myaiserv.resources import Resources
from myaiserv.runs.schemas import (
    DayStats,
    ModelStats,
    RunSearchFilters,
    RunSearchRequest,
    RunStats,
    TimeRange,
)
from myaiserv.runs.search import RunSearchService
from myaiserv.runs.service import RunService
from myaiserv.search.deps import search_store

RANGES = (7, 30, 90)  # days the overview covers, today (UTC) included
FAILED_SHOWN = 10  # failed documents (and runs) listed; the counts say how many in all
AUDIT_PAGE = 50
MAX_EVENT_ID = 2**63 - 1  # bigint, as the API's bound


# -- the overview ------------------------------------------------------------------------


@dataclass(frozen=True)
class Day:
    day: date
    stats: RunStats | None  # None: no run that day


@dataclass(frozen=True)
class FailedItem:
    kind: str  # "document" or "run"
    id: str
    name: str
    href: str
    reason: str
    failed_at: datetime | None


@dataclass(frozen=True)
class Overview:
    days: int
    since: date
    totals: RunStats | None
    by_day: list[Day]
    by_model: list[ModelStats]
    other_models_count: int
    documents: dict[IndexStatus, int]
    runs: dict[IndexStatus, int]
    failed: list[FailedItem]

    @property
    def new_tenant(self) -> bool:
        """Nothing stored at all yet: the page says what to do first."""
        return not any(self.documents.values()) and not any(self.runs.values())

    @property
    def charts(self) -> list[tuple[str, list[tuple[str, float | int, bool]], str]]:
        """(caption, points, unit) of each chart: one bar a day, every day of the range."""

        def points(value: Any, bad: bool = False) -> list[tuple[str, float | int, bool]]:
            return [(d.day.isoformat(), value(d.stats) if d.stats else 0, bad) for d in self.by_day]

        return [
            ("Requests a day", points(lambda s: s.count), ""),
            ("Errors a day", points(lambda s: s.errors, bad=True), ""),
            ("p95 latency a day", points(lambda s: float(s.latency_p95_ms or 0)), " ms"),
            ("Cost a day", points(lambda s: float(s.cost_usd)), " USD"),
        ]


def every_day(by_day: list[DayStats] | None, since: date, days: int) -> list[Day]:
    """A day for each day of the range (the aggregation leaves out the days before the
    first run and after the last)."""
    found = {d.day: d for d in by_day or []}
    return [Day(day, found.get(day)) for day in (since + timedelta(n) for n in range(days))]


def failed_document(doc: Document) -> FailedItem:
    return FailedItem(
        "document",
        str(doc.id),
        doc.title or doc.source or str(doc.id),
        f"/console/documents/{doc.id}",
        doc.index_error or "",
        doc.index_failed_at,
    )


def failed_run(run: Run) -> FailedItem:
    return FailedItem(
        "run",
        str(run.id),
        f"{run.model} ({run.provider})",
        f"/console/runs/{run.id}",
        run.index_error or "",
        run.index_failed_at,
    )


def since_day(days: int, now: datetime) -> date:
    return now.astimezone(UTC).date() - timedelta(days=days - 1)


class OverviewController(Controller):
    path = "/overview"
    include_in_schema = False
    guards = [requires("read")]  # noqa: RUF012

    @get("/")
    async def overview(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
        days: int = 7,
    ) -> Template:
        """The tenant at a glance over the last ``days`` (7, 30 or 90)."""
        if days not in RANGES:
            raise InvalidInputError("days", f"must be one of {', '.join(map(str, RANGES))}")
        since = since_day(days, datetime.now(UTC))
        searcher = RunSearchService(
            search_store(resources),
            principal.tenant_id,
            max_page_size=resources.settings.limits.max_page_size,
        )
        found = await searcher.search(
            RunSearchRequest(
                size=0,
                filters=RunSearchFilters(
                    created_at=TimeRange(gte=datetime.combine(since, time(), tzinfo=UTC))
                ),
                aggregations=["totals", "by_day", "by_model"],
            )
        )
        aggs = found.aggregations
        documents = DocumentService(db_session, principal.tenant_id, resources.settings)
        runs = RunService(db_session, principal.tenant_id)
        failed_docs, _ = await documents.list(
            cursor=None, limit=FAILED_SHOWN, tag=None, index_status="failed"
        )
        failed_runs, _ = await runs.list(cursor=None, limit=FAILED_SHOWN, index_status="failed")
        view = Overview(
            days=days,
            since=since,
            totals=aggs.totals if aggs else None,
            by_day=every_day(aggs.by_day if aggs else None, since, days),
            by_model=list(aggs.by_model or []) if aggs else [],
            other_models_count=(aggs.other_models_count or 0) if aggs else 0,
            documents=await documents.index_counts(),
            runs=await runs.index_counts(),
            failed=[*map(failed_document, failed_docs), *map(failed_run, failed_runs)],
        )
        return page(
            request,
            "overview/overview.html",
            section="overview",
            title="Overview",
            view=view,
            ranges=RANGES,
        )


# -- settings: usage and audit -------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    name: str
    used: float | int
    limit: float | int | None  # None: unlimited
    unit: str
    digits: int

    @property
    def left(self) -> float | int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def percent(self) -> int | None:
        if not self.limit:
            return None
        return min(100, round(self.used / self.limit * 100))


def quotas_of(usage: UsageOut) -> list[Quota]:
    return [
        Quota("Tokens", usage.tokens, usage.daily_token_quota, "", 0),
        Quota("Cost", usage.cost_usd, usage.daily_cost_quota_usd, " USD", 4),
    ]


def _clock(seconds: int) -> str:
    hours, rest = divmod(max(seconds, 0), 3600)
    return f"{hours} h {rest // 60:02d} min"


@dataclass(frozen=True)
class AuditFilters:
    """The audit page's form, as typed (empty: no filter)."""

    action: str = ""
    outcome: str = ""
    actor: str = ""
    since: str = ""  # a day, YYYY-MM-DD, from
    until: str = ""  # a day, YYYY-MM-DD, up to and including

    def query_string(self, **more: str) -> str:
        given = {k: v for k, v in vars(self).items() if v}
        return urlencode({**given, **more})

    def parsed(self, tenant: Any, before_id: int | None) -> tuple[AuditQuery, dict[str, str]]:
        """The API's query, and the errors of the fields that cannot be one (checked as
        the API's parameters are)."""
        errors: dict[str, str] = {}
        if len(self.action) > 64:
            errors["action"] = "At most 64 characters."
        if len(self.actor) > 100:
            errors["actor"] = "At most 100 characters."
        if self.outcome not in ("", "success", "failure"):
            errors["outcome"] = "Success or failure."
        days: dict[str, datetime | None] = {}
        for name, value, shift in (("since", self.since, 0), ("until", self.until, 1)):
            days[name] = None
            if value:
                try:
                    day = date.fromisoformat(value)
                except ValueError:
                    errors[name] = "A day, as YYYY-MM-DD."
                    continue
                days[name] = datetime.combine(day + timedelta(shift), time(), tzinfo=UTC)
        query = AuditQuery(
            tenant_id=tenant,
            action=self.action or None,
            outcome=self.outcome or None,
            actor=self.actor or None,
            since=days["since"],
            until=days["until"],
            before_id=before_id,
            limit=AUDIT_PAGE,
        )
        return query, errors


def details_text(event: AuditEvent) -> str:
    if not event.details:
        return ""
    return json.dumps(event.details, sort_keys=True, ensure_ascii=False)


class UsageAuditController(Controller):
    """Two of the settings pages (the others, and /console/settings itself, live beside)."""

    path = "/settings"
    include_in_schema = False
    guards = [requires("admin")]  # noqa: RUF012

    @get("/usage")
    async def usage(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        resources: Resources,
    ) -> Template:
        """Today's LLM usage of the tenant against its daily quotas, and when they reset."""
        now = datetime.now(UTC)
        usage = await usage_report(provide_quota_service(resources, principal), db_session, now)
        return page(
            request,
            "overview/usage.html",
            section="settings",
            title="Usage and quotas",
            usage=usage,
            quotas=quotas_of(usage),
            resets_at=now + timedelta(seconds=usage.resets_in_s),
            resets_in=_clock(usage.resets_in_s),
        )

    @get("/audit")
    async def audit(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: AsyncSession,
        action: str = "",
        outcome: str = "",
        actor: str = "",
        since: str = "",
        until: str = "",
        cursor: str | None = None,
    ) -> Template:
        """The tenant's audit log, newest first, filtered as /v1/admin/audit filters it."""
        filters = AuditFilters(action.strip(), outcome, actor.strip(), since, until)
        query, errors = filters.parsed(principal.tenant_id, below(cursor, high=MAX_EVENT_ID))
        rows: list[AuditEvent] = []
        next_id = None
        if not errors:
            rows, next_id = await find(db_session, query)
        base = "/console/settings/audit"
        return page(
            request,
            "overview/audit.html",
            section="settings",
            title="Audit log",
            status_code=400 if errors else 200,
            filters=filters,
            errors=errors,
            events=[(e, details_text(e)) for e in rows],
            filtered=any(vars(filters).values()),
            next_url=(
                f"{base}?{filters.query_string(cursor=below_cursor(next_id))}"
                if next_id is not None
                else None
            ),
            first_url=f"{base}?{filters.query_string()}" if cursor else None,
        )
