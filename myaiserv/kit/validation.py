"""Checks that schema types cannot express: what PostgreSQL would otherwise reject late."""

from __future__ import annotations

import json
from typing import Any

from myaiserv.errors import AppError


class InvalidInputError(AppError):
    status_code = 422
    title = "Invalid input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}", extra={"errors": [{"field": field, "message": message}]}
        )
        self.field = field
        self.message = message

    def within(self, parent: str) -> InvalidInputError:
        """The same error for a field nested under ``parent`` (``retrieval.k``)."""
        return InvalidInputError(f"{parent}.{self.field}", self.message)


def reject_nul(value: Any, field: str) -> None:
    """PostgreSQL text cannot hold U+0000; say so up front, naming the field."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInputError(field, "contains a NUL character (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, f"{field}.{key}")
            reject_nul(item, f"{field}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            reject_nul(item, f"{field}[{i}]")


def changes_of(data: Any) -> dict[str, Any]:
    """The fields a PATCH body sets (msgspec ``UNSET`` ones left out); none at all is a 422."""
    import msgspec

    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if not changes:
        raise InvalidInputError("body", "no field to change")
    return changes


MAX_METADATA_VALUE_CHARS = 8000
# Metadata is indexed as one Elasticsearch ``flattened`` field, which refuses a document
# whose objects nest deeper than its depth limit (20, the mapping's default), or holding a
# value whose term, the key path and the value as "path\0value" in UTF-8, is longer than
# Lucene's longest term. Refused here, naming the place, instead of a write that would be
# acknowledged and then dead-lettered.
FLATTENED_DEPTH_LIMIT = 20
MAX_TERM_BYTES = 32766


def check_metadata(
    metadata: Any, field: str = "metadata", *, max_value_chars: int = MAX_METADATA_VALUE_CHARS
) -> dict[str, Any]:
    """A JSON object without NUL characters whose strings are at most ``max_value_chars``
    long and which Elasticsearch's flattened field accepts."""
    if not isinstance(metadata, dict):
        raise InvalidInputError(field, "must be a JSON object")
    reject_nul(metadata, field)
    check_string_lengths(metadata, field, max_value_chars)
    check_flattened(metadata, field)
    return metadata


def check_flattened(value: Any, field: str, path: tuple[str, ...] = (), depth: int = 0) -> None:
    """``value`` fits a flattened field: objects at most ``FLATTENED_DEPTH_LIMIT`` deep
    (arrays do not count), and every leaf's term at most ``MAX_TERM_BYTES``."""
    if isinstance(value, dict):
        if depth + 1 > FLATTENED_DEPTH_LIMIT:
            raise InvalidInputError(
                field, f"objects nested deeper than {FLATTENED_DEPTH_LIMIT} levels"
            )
        for key, item in value.items():
            check_flattened(item, f"{field}.{key}", (*path, str(key)), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_flattened(item, f"{field}[{i}]", path, depth)
    elif value is not None:
        text = value if isinstance(value, str) else json.dumps(value)
        size = len(".".join(path).encode()) + 1 + len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TERM_BYTES:
            raise InvalidInputError(
                field,
                f"{size} bytes with its key path in UTF-8; at most {MAX_TERM_BYTES} can be indexed",
            )


def check_string_lengths(value: Any, field: str, limit: int) -> None:
    """Every string inside a JSON value (keys too) must be at most ``limit`` characters."""
    if isinstance(value, str):
        if len(value) > limit:
            raise InvalidInputError(field, f"{len(value)} characters; at most {limit} allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_string_lengths(key, f"{field}.{key}", limit)
            check_string_lengths(item, f"{field}.{key}", limit)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_string_lengths(item, f"{field}[{i}]", limit)
