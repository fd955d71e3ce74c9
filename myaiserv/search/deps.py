"""Building search's services for a request: which of the process's clients and settings
each gets."""

from __future__ import annotations

from uuid import UUID

from myaiserv.db.generations import GenerationReader
from myaiserv.resources import Resources
from myaiserv.search.cache import ResultCache
from myaiserv.search.cursor import signing_key
from myaiserv.search.service import SearchService
from myaiserv.search.store import SearchStore
from myaiserv.search.window import WindowStore


def search_store(resources: Resources) -> SearchStore:
    return SearchStore(
        resources.es,
        resources.indices,
        resources.index_guard,
        pit_keep_alive=resources.settings.search.pit_keep_alive,
        breaker=resources.breakers.elasticsearch,
        timeout_s=resources.settings.es.search_timeout_s,
    )


def search_service(resources: Resources, tenant_id: UUID) -> SearchService:
    settings = resources.settings
    return SearchService(
        store=search_store(resources),
        cache=ResultCache(
            resources.redis,
            GenerationReader(resources.engine),
            settings.redis.namespace,
            settings.search.cache_ttl_s,
        ),
        windows=WindowStore(
            resources.redis, settings.redis.namespace, settings.search.pit_keep_alive
        ),
        embedder=resources.embedder.for_tenant(tenant_id),
        embedders=resources.embedders,
        settings=settings.search,
        cursor_key=signing_key(settings),
        tenant_id=tenant_id,
    )
