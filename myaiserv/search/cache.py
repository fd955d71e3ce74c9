"""Result-page cache in Redis, invalidated by index generations.

Indexers bump a generation counter per tenant and index kind once their writes are
searchable (after a refresh); a reindex bumps the kind's global generation. A cached page's
key holds the generations of the kinds it searched, so once a write is searchable no
request can find a page computed before it: the key it would look up has changed. Old
pages are never read again and expire (TTL a setting).

Redis down means no cache, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from myaiserv import metrics
from myaiserv.cache.client import as_bytes
from myaiserv.logging import get_logger
from myaiserv.search.kinds import Kind

log = get_logger(__name__)

ALL_TENANTS = "*"


def generation_key(prefix: str, tenant_id: str, kind: Kind) -> str:
    return f"{prefix}:gen:{tenant_id}:{kind}"


async def bump_generations(redis: Redis, prefix: str, pairs: Iterable[tuple[str, Kind]]) -> None:
    """Bump (tenant, kind) generations; ``ALL_TENANTS`` for a kind-wide change. Raises
    RedisError: the caller decides whether that matters."""
    keys = sorted({generation_key(prefix, t, k) for t, k in pairs})
    if not keys:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.incr(key)
        await pipe.execute()


class ResultCache:
    """Pages (or answers: ``namespace``) keyed by tenant, request and generations."""

    def __init__(self, redis: Redis, prefix: str, ttl_s: int, namespace: str = "search") -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.namespace = namespace

    async def key(self, tenant_id: str, kinds: list[Kind], fingerprint: str) -> str | None:
        """The page's key at the current generations (None when Redis is unavailable)."""
        names = []
        for kind in sorted(kinds):
            names += [generation_key(self.prefix, tenant_id, kind)]
            names += [generation_key(self.prefix, ALL_TENANTS, kind)]
        try:
            values = await self.redis.mget(names)
        except (RedisError, OSError) as exc:
            log.warning("search cache unavailable", error=str(exc))
            return None
        generations = ".".join((as_bytes(v) or b"0").decode() for v in values)
        return f"{self.prefix}:{self.namespace}:{tenant_id}:{fingerprint}:{generations}"

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
