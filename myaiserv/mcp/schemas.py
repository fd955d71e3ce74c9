"""The MCP tools' arguments: msgspec structs, so a tool's input schema and its checks are
the HTTP API's (the answer, run search and document tools take the very bodies of their
``/v1`` routes), and a bad argument is an invalid-argument error naming its field."""

from __future__ import annotations

import re
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from myaiserv.kit.validation import InvalidInputError
from myaiserv.search.schemas import Filters, Mode, SearchRequest

S = TypeVar("S", bound=msgspec.Struct)

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"field `(?P<name>[^`]+)`")


class SearchArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``search``: the part of ``POST /v1/search`` an agent needs to find passages."""

    query: str
    kinds: list[str] = msgspec.field(default_factory=lambda: ["documents"])
    mode: Mode = "hybrid"
    filters: Filters | None = None
    size: int | None = None
    cursor: str | None = None
    collapse: bool = False  # one passage per document: its best chunk

    def request(self) -> SearchRequest:
        """The search request, asking for the passages' text where documents are searched."""
        return SearchRequest(
            query=self.query,
            kinds=self.kinds,
            mode=self.mode,
            filters=self.filters,
            size=self.size,
            cursor=self.cursor,
            collapse=self.collapse,
            fields=["text"] if "documents" in self.kinds else [],
        )


class DocumentRef(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``get_document``: a document's id."""

    id: UUID


def input_schema(args: type[msgspec.Struct]) -> dict[str, Any]:
    """The struct's JSON Schema with the struct itself at the root (MCP wants an object
    there); nested structs stay in ``$defs``."""
    schema = msgspec.json.schema(args)
    defs: dict[str, Any] = schema.get("$defs", {})
    root = dict(defs.pop(args.__name__))
    root.pop("title", None)
    root.pop("description", None)  # the struct's docstring is for us; the tool has its own
    if defs:
        root["$defs"] = defs
    return root


def field_of(error: msgspec.ValidationError) -> str:
    """The argument a msgspec error is about, as the HTTP API names fields
    (``filters.type``, ``fields[0]``)."""
    message = str(error)
    at = _AT.search(message)
    path = at.group("path").lstrip(".") if at else ""
    named = _NAMED.search(message)
    if named and ("unknown field" in message or "missing required field" in message):
        return f"{path}.{named.group('name')}" if path else named.group("name")
    return path or "arguments"


def parse(arguments: dict[str, Any] | None, args: type[S]) -> S:
    """The tool's arguments, checked; InvalidInputError (422) naming the field if not."""
    try:
        return msgspec.convert(arguments or {}, args, strict=True)
    except msgspec.ValidationError as exc:
        message = _AT.sub("", str(exc))
        raise InvalidInputError(field_of(exc), message) from None
