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

from myaiserv.cache.client import create_redis_client
from myaiserv.config import Settings
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.search.client import create_es_client


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    es: AsyncElasticsearch
    redis: Redis


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Clients connect lazily: a dependency that is down does not stop start-up, it makes
    ``/ready`` fail until it is back."""
    engine = create_engine(settings)
    es = create_es_client(settings)
    redis = create_redis_client(settings)
    try:
        yield Resources(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            es=es,
            redis=redis,
        )
    finally:
        await es.close()
        await redis.aclose()
        await engine.dispose()
