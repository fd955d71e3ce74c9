"""What the console's Documents list reads from its URL and links back to: the search's
filters and facets from the query string (metadata values typed as their fields are), and
each facet bucket's link that adds or removes its value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request

from myaiserv.config import Settings
from myaiserv.search.schemas import Filters, SearchResponse

FACETS = ("tags", "content_type", "source")


@dataclass(frozen=True)
class Bucket:
    value: Any
    count: int
    href: str
    active: bool


def query_of(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if value != "":
            params.setdefault(key, []).append(value)
    return params


def href(params: dict[str, list[str]], **change: list[str] | None) -> str:
    """The list's URL with ``params`` changed (None removes one); always the first page."""
    merged = {k: v for k, v in params.items() if k != "cursor"}
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    query = urlencode([(k, v) for k, vs in merged.items() for v in vs])
    return "/console/documents" + (f"?{query}" if query else "")


def filters(params: dict[str, list[str]], settings: Settings) -> Filters | None:
    meta: dict[str, Any] = {}
    for name, kind in settings.search.metadata_fields.items():
        values = params.get(f"meta.{name}")
        if values:
            meta[name] = [typed(v, kind) for v in values]
    filters = Filters(
        tags=params.get("tags"),
        content_type=params.get("content_type"),
        source=params.get("source"),
        metadata=meta or None,
    )
    return filters if msgspec.to_builtins(filters) else None


def typed(value: str, kind: str) -> Any:
    """A metadata filter from the URL, typed as the field is (the search checks it)."""
    if kind == "boolean":
        return value == "true"
    if kind == "long":
        return int(value) if value.lstrip("-").isdigit() else value
    if kind == "double":
        try:
            return float(value)
        except ValueError:
            return value
    return value


def facet_names(settings: Settings) -> list[str]:
    meta = [
        f"metadata.{name}"
        for name, kind in settings.search.metadata_fields.items()
        if kind in ("keyword", "boolean", "long")
    ]
    return [*FACETS, *meta]


def buckets(name: str, found: SearchResponse, params: dict[str, list[str]]) -> list[Bucket]:
    key = f"meta.{name.removeprefix('metadata.')}" if name.startswith("metadata.") else name
    chosen = params.get(key, [])
    out = []
    for b in found.facets.get(name, []):
        value = str(b.value).lower() if isinstance(b.value, bool) else str(b.value)
        active = value in chosen
        values = [v for v in chosen if v != value] if active else [*chosen, value]
        out.append(Bucket(b.value, b.count, href(params, **{key: values or None}), active))
    return out
