"""What a search cursor holds (through the API's one codec, ``kit.cursor``): the window its
first page stored (``search.window``) and where the next page starts in it, and past the
window (bm25 and browsing only) the point in time the later pages read and the sort values
of the last hit. It is signed with the server's key and bound to the request's
fingerprint, so it is only accepted, unedited, for the search (and the tenant) that
produced it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from myaiserv.config import Settings
from myaiserv.errors import AppError
from myaiserv.kit import cursor as codec
from myaiserv.kit.cursor import InvalidCursorError

MAX_OFFSET = 10_000  # a window holds at most max_window (<= 10,000) hits


class CursorExpiredError(AppError):
    status_code = 410
    title = "Cursor expired"

    def __init__(self) -> None:
        super().__init__(
            "cursor: the search's cursor has expired; repeat the search without cursor",
            extra={"errors": [{"field": "cursor", "message": "expired"}]},
        )


def signing_key(settings: Settings) -> bytes:
    """The key search cursors are signed with: the ``search.cursor_secret`` setting, or in
    development one derived from the database URL (a secret every instance shares)."""
    secret = settings.search.cursor_secret
    if secret is not None:
        return secret.get_secret_value().encode()
    material = settings.database_url.encode()
    return hmac.new(material, b"myaiserv search cursors", hashlib.sha256).digest()


@dataclass(frozen=True)
class Cursor:
    window: str  # the stored window's token
    offset: int  # hits of the window already returned
    pit: str | None = None  # past the window: the point in time the pages read
    after: list[Any] | None = None  # past the window: search_after of the last hit

    def encode(self, fingerprint: str, key: bytes) -> str:
        position: dict[str, Any] = {"w": self.window, "o": self.offset}
        if self.pit is not None:
            position["p"] = self.pit
        if self.after is not None:
            position["a"] = self.after
        return codec.encode(position, bound_to=fingerprint, key=key)


def decode(token: str, fingerprint: str, key: bytes) -> Cursor:
    position = codec.decode(token, bound_to=fingerprint, key=key)
    window, pit, after = position.get("w"), position.get("p"), position.get("a")
    if (
        not isinstance(window, str)
        or not (pit is None or isinstance(pit, str))
        or not (after is None or isinstance(after, list))
    ):
        raise InvalidCursorError
    offset = codec.integer(position, "o", low=0, high=MAX_OFFSET)
    return Cursor(window=window, offset=offset, pit=pit, after=after)
