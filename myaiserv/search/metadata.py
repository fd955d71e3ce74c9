"""Typed metadata fields: the whitelist of metadata keys that searches filter and facet on.

Metadata is free-form JSON; Elasticsearch keeps all of it in a ``flattened`` field (every
value a keyword). Keys named in ``search.metadata_fields`` are also copied, with their
declared type, into ``meta.<key>``, so ranges compare numbers and dates as such. A value
that does not fit its type is left out of ``meta`` (the document still indexes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}


def parse_date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def coerce(value: Any, kind: str) -> Any:
    """``value`` as the declared ``kind``, or None when it does not fit."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if kind == "keyword":
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)[:512] if isinstance(value, (str, int, float)) else None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in TRUE else False if text in FALSE else None
    if kind == "date":
        parsed = parse_date(value)
        return parsed.isoformat() if parsed else None
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if kind == "double" else int(str(value).strip())
    except (TypeError, ValueError):
        return None
    if kind == "double" and not math.isfinite(number):
        return None
    if kind == "long" and not -(2**63) <= number < 2**63:
        return None
    return number


def typed(metadata: dict[str, Any] | None, fields: Mapping[str, str]) -> dict[str, Any]:
    """The whitelisted keys of ``metadata``, typed; keys whose value does not fit are left
    out."""
    out: dict[str, Any] = {}
    for name, kind in fields.items():
        if metadata and name in metadata:
            value = coerce(metadata[name], kind)
            if value is not None:
                out[name] = value
    return out
