"""A search's window, kept in Redis behind its cursor instead of a point in time.

The first page of a search reads its window (up to ``window`` hits of each list), fuses it
and, when another page exists, stores the window's order (each hit's index kind, id, score,
ranks and list scores) with the first page's total, facets and histogram under a random
token that the (signed) cursor names. Later pages slice the stored order and read only
their own hits by id, so every page comes from the same window (each hit exactly once, in
one order) and no Elasticsearch search context stays open between requests. A window lives
for the cursor keep-alive after the last page read from it, and is not deleted when a
client reaches its end: a cached first page hands its cursor to every client it serves.
"""

from __future__ import annotations

import re
import secrets

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from myaiserv.cache.client import as_bytes
from myaiserv.errors import DependencyUnavailableError
from myaiserv.logging import get_logger
from myaiserv.search.fusion import Fused
from myaiserv.search.schemas import FacetBucket, HistogramBucket, Total

log = get_logger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(keep_alive: str) -> int:
    """An Elasticsearch keep-alive (``2m``) in seconds."""
    match = re.fullmatch(r"([0-9]+)([smh])", keep_alive)
    if match is None:
        raise ValueError(f"not a keep-alive: {keep_alive!r}")
    return max(1, int(match[1]) * _UNITS[match[2]])


class Entry(msgspec.Struct, array_like=True):
    """One fused hit of the window: enough to read it again by id and rank it as before."""

    key: str  # the fusion key (a document's, when collapsing)
    kind: str
    id: str
    score: float
    ranks: dict[str, int | None]
    scores: dict[str, float | None]


class Window(msgspec.Struct, kw_only=True):
    entries: list[Entry]
    total: Total
    facets: dict[str, list[FacetBucket]] = msgspec.field(default_factory=dict)
    histogram: list[HistogramBucket] | None = None
    more: bool = False  # bm25 and browsing: hits past the window, read within a point in time

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]


class WindowStore:
    def __init__(self, redis: Redis, prefix: str, keep_alive: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = seconds(keep_alive)

    def _key(self, tenant_id: str, token: str) -> str:
        return f"{self.prefix}:window:{tenant_id}:{token}"

    async def put(self, tenant_id: str, window: Window) -> str | None:
        """The new window's token; None when Redis is unavailable (the page then has no
        next cursor: paging needs Redis)."""
        token = secrets.token_urlsafe(16)
        try:
            await self.redis.set(
                self._key(tenant_id, token), msgspec.msgpack.encode(window), ex=self.ttl_s
            )
        except (RedisError, OSError) as exc:
            log.warning("search window not stored: no next page", error=str(exc))
            return None
        return token

    async def get(self, tenant_id: str, token: str) -> Window | None:
        """The window (its life extended by the keep-alive); None once it has expired."""
        try:
            raw = as_bytes(await self.redis.getex(self._key(tenant_id, token), ex=self.ttl_s))
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis", "search cursors need Redis") from exc
        return None if raw is None else msgspec.msgpack.decode(raw, type=Window)


def entry_of(fused: Fused) -> Entry:
    """A fused hit as a window entry."""
    hit = fused.hit
    return Entry(
        key=fused.key,
        kind=str(hit["_source"].get("kind", "")),
        id=str(hit["_id"]),
        score=fused.score,
        ranks=fused.ranks,
        scores=fused.scores,
    )
