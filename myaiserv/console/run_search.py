"""The console's runs search as its query string holds it: the form's fields (filters
that take several values, single ones, ranges), the ``POST /v1/runs/search`` body they
make (so the API's validation applies), and a refused search's error mapped back to the
form field that caused it. The query string is the search: a search is a shareable URL."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import msgspec

from myaiserv.kit.validation import InvalidInputError
from myaiserv.runs.schemas import RunSearchRequest

PAGE_SIZE = 25
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
