"""Checks that schema types cannot express: what PostgreSQL would otherwise reject late."""

from __future__ import annotations

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


# Elasticsearch indexes each metadata value as one term and refuses terms over 32 KB.
MAX_METADATA_VALUE_CHARS = 8000


def check_metadata(metadata: Any, field: str = "metadata") -> dict[str, Any]:
    """A JSON object without NUL characters whose strings all fit in one index term."""
    if not isinstance(metadata, dict):
        raise InvalidInputError(field, "must be a JSON object")
    reject_nul(metadata, field)
    check_string_lengths(metadata, field, MAX_METADATA_VALUE_CHARS)
    return metadata


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
