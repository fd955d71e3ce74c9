"""What a search cursor holds (through the API's one codec, ``kit.cursor``): the point in
time the first page was read from and where the next page starts. It is bound to the
request's fingerprint, so it is only accepted for the search (and the tenant) that
produced it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from myaiserv.errors import AppError
from myaiserv.kit import cursor as codec
from myaiserv.kit.cursor import InvalidCursorError

MAX_WINDOW = 10_000
MAX_OFFSET = 2**31 - 1


class CursorExpiredError(AppError):
    status_code = 410
    title = "Cursor expired"

    def __init__(self) -> None:
        super().__init__(
            "cursor: the search's point in time has expired; repeat the search without cursor",
            extra={"errors": [{"field": "cursor", "message": "expired"}]},
        )


@dataclass(frozen=True)
class Cursor:
    pit: str
    offset: int = 0  # vector/hybrid: hits already returned from the fused window
    after: list[Any] | None = None  # bm25: Elasticsearch search_after of the last hit
    window: int = 0  # vector/hybrid: the fused window every page reads

    def encode(self, fingerprint: str) -> str:
        position: dict[str, Any] = {"p": self.pit, "o": self.offset}
        if self.window:
            position["w"] = self.window
        if self.after is not None:
            position["a"] = self.after
        return codec.encode(position, bound_to=fingerprint)


def decode(token: str, fingerprint: str) -> Cursor:
    position = codec.decode(token, bound_to=fingerprint)
    pit, after = position.get("p"), position.get("a")
    if not isinstance(pit, str) or not (after is None or isinstance(after, list)):
        raise InvalidCursorError
    offset = codec.integer(position, "o", low=0, high=MAX_OFFSET)
    window = codec.integer(position, "w", low=1, high=MAX_WINDOW) if "w" in position else 0
    return Cursor(pit=pit, offset=offset, after=after, window=window)
