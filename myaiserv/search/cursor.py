"""Opaque paging cursors: the point in time the first page was read from, where the next
page starts, and a fingerprint of the request, so a cursor is only accepted for the search
(and the tenant) that produced it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from myaiserv.kit.validation import InvalidInputError


@dataclass(frozen=True)
class Cursor:
    pit: str
    fingerprint: str
    offset: int = 0  # vector/hybrid: hits already returned from the fused window
    after: list[Any] | None = None  # bm25: Elasticsearch search_after of the last hit
    window: int = 0  # vector/hybrid: the fused window every page reads

    def encode(self) -> str:
        payload = {"v": 1, "p": self.pit, "f": self.fingerprint, "o": self.offset}
        if self.window:
            payload["w"] = self.window
        if self.after is not None:
            payload["a"] = self.after
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def fingerprint(tenant_id: str, request: dict[str, Any]) -> str:
    raw = json.dumps([tenant_id, request], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def decode(value: str, expected_fingerprint: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        payload = json.loads(raw)
        cursor = Cursor(
            pit=payload["p"],
            fingerprint=payload["f"],
            offset=payload.get("o", 0),
            after=payload.get("a"),
            window=payload.get("w", 0),
        )
        valid = (
            payload.get("v") == 1
            and isinstance(cursor.pit, str)
            and isinstance(cursor.offset, int)
            and cursor.offset >= 0
            and isinstance(cursor.window, int)
            and 0 <= cursor.window <= 10_000
            and (cursor.after is None or isinstance(cursor.after, list))
        )
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        valid = False
    if not valid:
        raise InvalidInputError("cursor", "malformed cursor; pass next_cursor back unchanged")
    if cursor.fingerprint != expected_fingerprint:
        raise InvalidInputError(
            "cursor", "this cursor belongs to another search; repeat the same request with it"
        )
    return cursor
