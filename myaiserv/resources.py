"""Per-process resources: opened once (app lifespan, CLI job, indexer), closed on exit.

Nothing here is created at import time; web instances share no state except through
PostgreSQL, Elasticsearch and Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myaiserv.audit.log import AuthFailureSampler
from myaiserv.cache.client import create_redis_client
from myaiserv.config import Settings
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.embeddings.model import Embedder
from myaiserv.embeddings.registry import Embedders
from myaiserv.health.breakers import DependencyBreakers
from myaiserv.llm.registry import ProviderRegistry
from myaiserv.search.client import create_es_client
from myaiserv.search.guard import IndexGuard
from myaiserv.search.indices import IndexManager, IndexOptions
from myaiserv.secrets.store import SecretResolver


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    es: AsyncElasticsearch
    redis: Redis
    embedder: CachedEmbedder  # the configured model
    embedders: Embedders  # every model the indices may name (a model switch)
    indices: IndexManager
    index_guard: IndexGuard
    llm: ProviderRegistry
    secrets: SecretResolver
    audit_sampler: AuthFailureSampler
    breakers: DependencyBreakers


def index_options(settings: Settings) -> IndexOptions:
    return IndexOptions(
        analyzer=settings.es.text_analyzer,
        replicas=settings.es.replicas,
        vector_index_type=settings.es.vector_index_type,
        app_stemmer=settings.search.app_stemmer,
        metadata_fields=tuple(sorted(settings.search.metadata_fields.items())),
    )


@asynccontextmanager
async def open_resources(
    settings: Settings, *, embedder: Embedder | None = None
) -> AsyncIterator[Resources]:
    """Clients connect lazily: a dependency that is down does not stop start-up, it makes
    ``/ready`` fail until it is back. The embedding model loads here (a few seconds), off
    the event loop; pass a loaded ``embedder`` to share one (tests, CLI jobs)."""
    owned = embedder is None
    model = embedder or Embedder.from_settings(settings.embedding)
    info = await model.aload()
    breakers = DependencyBreakers.from_settings(settings)
    engine = create_engine(settings)
    es = create_es_client(settings)
    redis = create_redis_client(settings, breakers.redis)
    indices = IndexManager(es, settings.es.index_prefix, info, index_options(settings))
    cached = CachedEmbedder(
        model, redis, ttl_s=settings.embedding.cache_ttl_s, namespace=settings.redis.namespace
    )
    embedders = Embedders(settings.embedding, model)
    sessionmaker = create_sessionmaker(engine, breakers.postgres)
    secrets = SecretResolver(
        sessionmaker,
        [k.get_secret_value() for k in settings.secrets.keys],
        ttl_s=settings.secrets.cache_ttl_s,
    )
    # The extractive provider cannot name a tenant: it embeds without the cache.
    llm = ProviderRegistry(settings.llm, cached.uncached(), secrets)
    try:
        yield Resources(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            es=es,
            redis=redis,
            embedder=cached,
            embedders=embedders,
            indices=indices,
            index_guard=IndexGuard(indices),
            llm=llm,
            secrets=secrets,
            audit_sampler=AuthFailureSampler(redis, settings.redis.namespace),
            breakers=breakers,
        )
    finally:
        await llm.aclose()
        await es.close()
        await redis.aclose()
        await engine.dispose()
        embedders.close()
        if owned:
            model.close()
