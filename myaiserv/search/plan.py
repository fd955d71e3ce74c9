"""From a search request to a validated ``Plan`` (pure functions): every check the schema
cannot express, naming the field, and the settings' defaults filled in. Filters become
Elasticsearch clauses here, the tenant's always first, so every body built from a plan
carries them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from myaiserv.config import SearchSettings
from myaiserv.embeddings.model import ModelInfo
from myaiserv.kit.validation import InvalidInputError, reject_nul
from myaiserv.search.fields import (
    FACET_KINDS,
    FACETS,
    FIELD_OF,
    FILTER_KINDS,
    HIDDEN_FIELDS,
)
from myaiserv.search.indices import SPECS, IndexOptions
from myaiserv.search.kinds import KINDS, Kind, as_kind
from myaiserv.search.metadata import coerce
from myaiserv.search.schemas import (
    DateRange,
    Filters,
    Fusion,
    Mode,
    Normalizer,
    SearchRequest,
    Weights,
)


@dataclass(frozen=True)
class Plan:
    """A validated request, ready to become Elasticsearch bodies."""

    tenant_id: str
    query: str
    kinds: list[Kind]
    mode: Mode
    size: int
    filters: list[dict[str, Any]]
    facets: list[str]
    histogram: tuple[str, str] | None
    fields: list[str]
    highlight: bool
    collapse: bool
    window: int
    fusion: Fusion
    normalizer: Normalizer
    rrf_k: int
    weights: dict[str, float]
    num_candidates: int
    stemmer: str
    meta_fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_text(self) -> bool:
        return bool(self.query)

    @property
    def needs_vector(self) -> bool:
        return self.has_text and self.mode != "bm25"

    @property
    def windowed(self) -> bool:
        """Every page is sliced from the same fused window of each list (vector, hybrid,
        collapsed bm25), rather than read with ``search_after``."""
        return self.has_text and (self.mode != "bm25" or self.collapse)

    @property
    def label(self) -> str:
        """The metrics' mode: a search without text is a browse."""
        return self.mode if self.has_text else "browse"


def plan_of(req: SearchRequest, cfg: SearchSettings, tenant_id: str) -> Plan:
    """Check what the schema cannot (naming the field) and fill in the settings'
    defaults."""
    reject_nul(req.query, "query")
    if len(req.query) > cfg.max_query_chars:
        raise InvalidInputError("query", f"longer than {cfg.max_query_chars} characters")
    kinds = kinds_of(req.kinds)
    meta_fields = dict(cfg.metadata_fields)
    filters = filter_clauses(tenant_id, req.filters, kinds, meta_fields)
    if not req.query.strip() and len(filters) == 1:
        raise InvalidInputError("query", "give query text, filters, or both")
    size = cfg.default_size if req.size is None else req.size
    if not 1 <= size <= cfg.max_size:
        raise InvalidInputError("size", f"must be between 1 and {cfg.max_size}")
    if req.fusion is not None and req.mode != "hybrid":
        raise InvalidInputError("fusion", 'applies to mode "hybrid" only')
    # A parameter of one fusion, with no fusion named, chooses that fusion: a client that
    # set rrf_k keeps reciprocal ranks whatever the deployment's default.
    implied: Fusion | None = (
        "rrf" if req.rrf_k is not None else "linear" if req.normalizer else None
    )
    fusion = req.fusion or implied or cfg.fusion
    if req.rrf_k is not None and not 1 <= req.rrf_k <= 10_000:
        raise InvalidInputError("rrf_k", "must be between 1 and 10000")
    if req.rrf_k is not None and fusion != "rrf":
        raise InvalidInputError("rrf_k", 'applies to fusion "rrf" only')
    if req.normalizer is not None and fusion != "linear":
        raise InvalidInputError("normalizer", 'applies to fusion "linear" only')
    if req.num_candidates is not None and not 1 <= req.num_candidates <= 10_000:
        raise InvalidInputError("num_candidates", "must be between 1 and 10000")
    weights = _weights(req.weights)
    window = cfg.rank_window if req.window is None else req.window
    if not 1 <= window <= cfg.max_window:
        raise InvalidInputError("window", f"must be between 1 and {cfg.max_window}")
    histogram = (req.histogram.field, req.histogram.interval) if req.histogram else None
    return Plan(
        tenant_id=tenant_id,
        query=req.query.strip(),
        kinds=kinds,
        mode=req.mode,
        size=size,
        filters=filters,
        facets=facet_fields(req.facets, kinds, meta_fields),
        histogram=histogram,
        fields=returned_fields(req.fields, kinds),
        highlight=req.highlight,
        collapse=req.collapse,
        window=max(window, size),
        fusion=fusion,
        normalizer=req.normalizer or cfg.normalizer,
        rrf_k=req.rrf_k or cfg.rrf_k,
        weights=weights,
        num_candidates=req.num_candidates or cfg.num_candidates,
        stemmer=cfg.app_stemmer,
        meta_fields=meta_fields,
    )


def _weights(given: Weights | None) -> dict[str, float]:
    if given is None:
        return {"bm25": 1.0, "vector": 1.0}
    weights = {"bm25": given.bm25, "vector": given.vector}
    for name, value in weights.items():
        if not 0 <= value <= 100:
            raise InvalidInputError(f"weights.{name}", "must be between 0 and 100")
    if not any(weights.values()):
        raise InvalidInputError("weights", "at least one weight must be above 0")
    return weights


def kinds_of(requested: list[str] | None) -> list[Kind]:
    if requested is None:
        return list(KINDS)
    if not requested:
        raise InvalidInputError("kinds", "give at least one kind, or leave it out for all")
    kinds: list[Kind] = []
    for i, name in enumerate(requested):
        kind = as_kind(name)
        if kind is None:
            raise InvalidInputError(
                f"kinds[{i}]", f"unknown kind {name!r}; choose from {', '.join(KINDS)}"
            )
        kinds.append(kind)
    return list(dict.fromkeys(kinds))


def _applies(name: str, where: str, kinds: list[Kind], table: dict[str, set[Kind]]) -> None:
    if not table[name] & set(kinds):
        raise InvalidInputError(
            where,
            f"applies to {', '.join(sorted(table[name]))} only, "
            f"and this search covers {', '.join(kinds)}",
        )


def _date_range(value: DateRange, where: str) -> dict[str, str]:
    bounds = {k: getattr(value, k) for k in ("gte", "gt", "lte", "lt")}
    bounds = {k: v for k, v in bounds.items() if v is not None}
    if not bounds:
        raise InvalidInputError(where, "give at least one of gte, gt, lte, lt")
    low = bounds.get("gte") or bounds.get("gt")
    high = bounds.get("lte") or bounds.get("lt")
    if low and high and _aware(low) > _aware(high):
        raise InvalidInputError(where, "the lower bound is after the upper bound")
    return {k: _aware(v).isoformat() for k, v in bounds.items()}


def _aware(value: Any) -> Any:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _strings(values: list[Any], where: str) -> list[str]:
    if not values:
        raise InvalidInputError(where, "give at least one value")
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value or len(value) > 512:
            raise InvalidInputError(f"{where}[{i}]", "must be a non-empty string (<= 512 chars)")
    return values


def _metadata_clause(name: str, kind: str, value: Any, where: str) -> dict[str, Any]:
    path = f"meta.{name}"

    def one(item: Any, at: str) -> Any:
        wrong = (
            (kind in ("long", "double") and isinstance(item, (str, bool)))
            or (kind == "boolean" and not isinstance(item, bool))
            or (kind == "date" and not isinstance(item, str))
        )
        typed = None if wrong else coerce(item, kind)
        if typed is None:
            raise InvalidInputError(at, f"must be a {kind} value")
        return typed

    if isinstance(value, dict):
        if kind in ("keyword", "boolean"):
            raise InvalidInputError(where, f"{name} is a {kind} field: ranges do not apply")
        unknown = set(value) - {"gte", "gt", "lte", "lt"}
        if unknown or not value:
            raise InvalidInputError(where, "a range takes gte, gt, lte and lt only")
        bounds = {k: one(v, f"{where}.{k}") for k, v in value.items()}
        low = bounds.get("gte", bounds.get("gt"))
        high = bounds.get("lte", bounds.get("lt"))
        if low is not None and high is not None and low > high:
            raise InvalidInputError(where, "the lower bound is above the upper bound")
        return {"range": {path: bounds}}
    if isinstance(value, list):
        if not value:
            raise InvalidInputError(where, "give at least one value")
        return {"terms": {path: [one(v, f"{where}[{i}]") for i, v in enumerate(value)]}}
    return {"term": {path: one(value, where)}}


def filter_clauses(
    tenant_id: str, filters: Filters | None, kinds: list[Kind], meta_fields: Mapping[str, str]
) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = [{"term": {"tenant_id": tenant_id}}]
    if filters is None:
        return clauses
    for name in FILTER_KINDS:
        value = getattr(filters, name)
        if value is None:
            continue
        where = f"filters.{name}"
        _applies(name, where, kinds, FILTER_KINDS)
        if isinstance(value, DateRange):
            clauses.append({"range": {name: _date_range(value, where)}})
        elif name == "metadata":
            if not isinstance(value, dict) or not value:
                raise InvalidInputError(where, "give at least one metadata field")
            for key, item in value.items():
                if key not in meta_fields:
                    allowed = ", ".join(sorted(meta_fields)) or "none are configured"
                    raise InvalidInputError(
                        f"{where}.{key}", f"not a filterable metadata field ({allowed})"
                    )
                clauses.append(_metadata_clause(key, meta_fields[key], item, f"{where}.{key}"))
        elif name == "tags":
            clauses += [{"term": {"tags": t}} for t in _strings(value, where)]
        elif name in FIELD_OF:
            # Chunks carry document_id, runs the documents they used (document_ids).
            values = _strings(value, where)
            fields = (name, FIELD_OF[name])
            clauses.append(
                {
                    "bool": {
                        "should": [{"terms": {f: values}} for f in fields],
                        "minimum_should_match": 1,
                    }
                }
            )
        else:
            clauses.append({"terms": {name: _strings(value, where)}})
    return clauses


def facet_fields(names: list[str], kinds: list[Kind], meta_fields: Mapping[str, str]) -> list[str]:
    for i, name in enumerate(names):
        where = f"facets[{i}]"
        if name.startswith("metadata."):
            key = name.removeprefix("metadata.")
            if meta_fields.get(key) not in ("keyword", "boolean", "long"):
                raise InvalidInputError(
                    where, f"{key!r} is not a keyword, boolean or long metadata field"
                )
            _applies("metadata", where, kinds, FILTER_KINDS)
        elif name in FACETS:
            _applies(name, where, kinds, FACET_KINDS)
        else:
            allowed = ", ".join([*FACETS, "metadata.<field>"])
            raise InvalidInputError(where, f"unknown facet {name!r}; choose from {allowed}")
    return list(dict.fromkeys(names))


def returned_fields(asked: list[str], kinds: list[Kind]) -> list[str]:
    known: set[str] = set()
    for kind in kinds:
        known |= _property_names(kind)
    for i, name in enumerate(asked):
        if name not in known or name in HIDDEN_FIELDS:
            raise InvalidInputError(
                f"fields[{i}]", f"unknown field {name!r} for {', '.join(kinds)}"
            )
    return list(dict.fromkeys(asked))


@functools.cache
def _property_names(kind: Kind) -> frozenset[str]:
    props = SPECS[kind].properties(ModelInfo("x", 1, 1), IndexOptions())
    return frozenset(props)
