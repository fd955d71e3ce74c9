"""Embeddings cached in Redis by model, scope and text hash: re-indexing unchanged text,
repeated queries and reindex backfills skip the model. Redis down means no cache, not an
error.

The scope keeps tenants apart: what a request embeds (a search's query, ``/v1/embeddings``)
is cached under its tenant (``for_tenant``), so a fast answer never tells one tenant what
another has embedded. The indexers' entries have a scope of their own that no request
reads."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from uuid import UUID

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError

from myaiserv import metrics
from myaiserv.cache.client import as_bytes
from myaiserv.embeddings.model import Embedder
from myaiserv.logging import get_logger

log = get_logger(__name__)


INDEXING_SCOPE = "index"


class CachedEmbedder:
    def __init__(
        self,
        embedder: Embedder,
        redis: Redis | None,
        *,
        ttl_s: int = 7 * 86400,
        scope: str = INDEXING_SCOPE,
        namespace: str = "myaiserv",
    ) -> None:
        self.embedder = embedder
        self.redis = redis
        self.ttl_s = ttl_s
        self.scope = scope
        # Every key MyAIServ keeps in Redis starts with the deployment's namespace.
        self.namespace = namespace

    def for_tenant(self, tenant_id: UUID | str) -> CachedEmbedder:
        """The same model and cache, with entries of ``tenant_id``'s own."""
        return CachedEmbedder(
            self.embedder,
            self.redis,
            ttl_s=self.ttl_s,
            scope=f"t:{tenant_id}",
            namespace=self.namespace,
        )

    def with_model(self, embedder: Embedder) -> CachedEmbedder:
        """The same cache and scope for another model (its vectors are keyed apart)."""
        if embedder is self.embedder:
            return self
        return CachedEmbedder(
            embedder, self.redis, ttl_s=self.ttl_s, scope=self.scope, namespace=self.namespace
        )

    def uncached(self) -> CachedEmbedder:
        """The same model without a cache (for callers that cannot name a tenant)."""
        return CachedEmbedder(self.embedder, None, scope=self.scope, namespace=self.namespace)

    def key(self, text: str) -> str:
        digest = hashlib.sha256(text.encode()).hexdigest()
        return f"{self.namespace}:emb:{self.embedder.vectors_id}:{self.scope}:{digest}"

    async def _get_many(self, keys: list[str]) -> list[bytes | None]:
        if self.redis is None:
            return [None] * len(keys)
        try:
            return [as_bytes(v) for v in await self.redis.mget(keys)]
        except (RedisError, OSError) as exc:
            log.warning("embedding cache unavailable", error=str(exc))
            return [None] * len(keys)

    async def _set_many(self, items: dict[str, bytes]) -> None:
        if self.redis is None or not items:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=self.ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("embedding cache unavailable", error=str(exc))

    async def encode(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        texts = list(texts)
        dims = self.embedder.info.dims
        out = np.zeros((len(texts), dims), dtype=np.float32)
        if not texts:
            return out
        keys = [self.key(t) for t in texts]
        cached = await self._get_many(keys)
        missing: list[int] = []
        for i, value in enumerate(cached):
            if value is None or len(value) != dims * 4:
                missing.append(i)
            else:
                out[i] = np.frombuffer(value, dtype=np.float32)
        if self.redis is not None:
            metrics.CACHE_REQUESTS.labels("embeddings", "hit").inc(len(texts) - len(missing))
            metrics.CACHE_REQUESTS.labels("embeddings", "miss").inc(len(missing))
        if missing:
            # Identical texts within one call are encoded once.
            unique = list(dict.fromkeys(texts[i] for i in missing))
            vectors = await self.embedder.encode(unique, urgent=urgent)
            by_text = dict(zip(unique, vectors, strict=True))
            for i in missing:
                out[i] = by_text[texts[i]]
            await self._set_many({self.key(t): v.tobytes() for t, v in by_text.items()})
        return out

    async def encode_query(self, text: str) -> np.ndarray:
        """One search query's vector, ahead of queued batches, after the model's query
        instruction (bge's; most models have none); whitespace is normalised so equal
        queries share the cache."""
        query = self.embedder.query_instruction + " ".join(text.split())
        vectors = await self.encode([query], urgent=True)
        return np.asarray(vectors[0], dtype=np.float32)
