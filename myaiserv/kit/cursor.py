"""The one paging cursor codec of the API: every listing and search hands out and takes
back its cursors through here.

A cursor is opaque to clients: unpadded base64url of a small JSON object holding a format
version, the position the next page starts from (each caller's own keys) and, where a
cursor is only valid for the request that produced it, that request's fingerprint. A
cursor that is not one of ours, or that belongs to another request, is refused with one
error everywhere: a 422 naming the ``cursor`` field, as for any other well-formed but
invalid value (the request parsed; the value means nothing to us).

A cursor that points at server state (search cursors: a stored window, a point in time)
is signed: ``<payload>.<HMAC-SHA256 of the payload under a server key>``. One edited by a
client (or signed by another deployment) is a 400 naming ``cursor``, checked before its
payload is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from myaiserv.kit.validation import InvalidInputError

VERSION = 1
# Far above any cursor we make (a point-in-time id and a few sort values), so a client
# cannot have us decode megabytes.
MAX_CHARS = 16_384
_RESERVED = ("v", "f")


class InvalidCursorError(InvalidInputError):
    def __init__(
        self, message: str = "not a cursor returned by this API; pass next_cursor back unchanged"
    ) -> None:
        super().__init__("cursor", message)


class TamperedCursorError(InvalidCursorError):
    status_code = 400
    title = "Invalid cursor"

    def __init__(self) -> None:
        super().__init__("edited or not signed by this service; pass next_cursor back unchanged")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(payload: str, key: bytes) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def fingerprint(*parts: Any) -> str:
    """A short digest of what a cursor is bound to (tenant, query, filters, sort)."""
    raw = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def encode(
    position: dict[str, Any], *, bound_to: str | None = None, key: bytes | None = None
) -> str:
    """``position``: JSON-able values under the caller's own keys (not ``v`` or ``f``);
    ``key``: sign it (see the module's docstring)."""
    if any(key in position for key in _RESERVED):
        raise ValueError(f"cursor positions cannot use the keys {_RESERVED}")
    payload: dict[str, Any] = {"v": VERSION, **position}
    if bound_to is not None:
        payload["f"] = bound_to
    token = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{token}.{_signature(token, key)}" if key is not None else token


def decode(token: str, *, bound_to: str | None = None, key: bytes | None = None) -> dict[str, Any]:
    """The position a cursor holds, if it is ours, signed under ``key`` (when given) and
    made for a request with the fingerprint ``bound_to`` (None: for any request). The
    caller checks its keys' values and raises ``InvalidCursorError`` for a value it cannot
    use."""
    if len(token) > MAX_CHARS:
        raise InvalidCursorError
    if key is not None:
        token, dot, signature = token.partition(".")
        if not dot or not token:
            raise InvalidCursorError
        if not hmac.compare_digest(signature, _signature(token, key)):
            raise TamperedCursorError
    try:
        payload = json.loads(_unb64(token))
    except (ValueError, RecursionError):  # base64, UTF-8 and JSON errors; deep nesting
        raise InvalidCursorError from None
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise InvalidCursorError
    if payload.get("f") != bound_to:
        raise InvalidCursorError(
            "belongs to another search: repeat the request that returned it (same query, "
            "filters and sort)"
        )
    return {k: v for k, v in payload.items() if k not in _RESERVED}


def integer(position: dict[str, Any], key: str, *, low: int, high: int) -> int:
    """An integer a position must hold, within [low, high]."""
    value = position.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidCursorError
    return value
