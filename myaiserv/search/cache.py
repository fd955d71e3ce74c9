"""Result-page cache in Redis, invalidated by index generations.

Indexers give each (tenant, kind) they wrote a new generation in the transaction that
settles the write, after it became searchable (a refresh); a reindex or a restore gives a
kind a new global generation. Generations live in PostgreSQL (``myaiserv.db.generations``)
and a cached page's key holds the ones of the kinds it searched, so once a write is
settled no request can find a page computed before it: the key it would look up has
changed. Old pages are never read again and expire (TTL a setting).

Redis down, or the generations unreadable, means no cache, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from myaiserv import metrics
from myaiserv.cache.client import as_bytes
from myaiserv.logging import get_logger
from myaiserv.search.kinds import Kind

log = get_logger(__name__)


class Generations(Protocol):
    async def read(self, tenant_id: str, kinds: Iterable[Kind]) -> list[str]:
        """The generations keying a page of ``tenant_id`` over ``kinds``."""


class ResultCache:
    """Pages (or answers: ``namespace``) keyed by tenant, request and generations."""

    def __init__(
        self,
        redis: Redis,
        generations: Generations,
        prefix: str,
        ttl_s: int,
        namespace: str = "search",
    ) -> None:
        self.redis = redis
        self.generations = generations
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.namespace = namespace

    async def key(self, tenant_id: str, kinds: list[Kind], fingerprint: str) -> str | None:
        """The page's key at the current generations (None when they cannot be read)."""
        try:
            values = await self.generations.read(tenant_id, kinds)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("index generations unavailable: no cache", error=str(exc)[:300])
            return None
        generations = ".".join(values)
        return f"{self.prefix}:{self.namespace}:{tenant_id}:{fingerprint}:{generations}"

    async def lookup(
        self, tenant_id: str, kinds: list[Kind], fingerprint: str
    ) -> tuple[str | None, bytes | None]:
        """(the page's key, None when there is no cache to use; the cached page, if any)."""
        key = await self.key(tenant_id, kinds, fingerprint)
        if key is None:
            return None, None
        try:
            return key, as_bytes(await self.redis.get(key))
        except (RedisError, OSError) as exc:
            log.warning("search cache unavailable", error=str(exc))
            return None, None

    async def get(self, key: str) -> bytes | None:
        try:
            return as_bytes(await self.redis.get(key))
        except (RedisError, OSError) as exc:
            log.warning("search cache unavailable", error=str(exc))
            return None

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self.redis.set(key, value, ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            log.warning("search cache unavailable", error=str(exc))


def record(result: str, cache: str = "search") -> None:
    metrics.CACHE_REQUESTS.labels(cache, result).inc()


def normalise(request: dict[str, Any]) -> dict[str, Any]:
    """Equivalent requests share a cache entry: the query's whitespace and case do not
    matter to the analyzers or the (uncased) embedding model."""
    out = dict(request)
    out["query"] = " ".join(str(out.get("query", "")).split()).lower()
    return out
