"""The Elasticsearch client, created per process from settings."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from myaiserv.config import Settings


def create_es_client(settings: Settings) -> AsyncElasticsearch:
    # orjson: bulk bodies are mostly vectors, which it writes straight from numpy
    # float32 arrays (shortest float32 digits), several times faster than json + tolist.
    return AsyncElasticsearch(
        hosts=settings.es_url,
        request_timeout=settings.es.request_timeout_s,
        max_retries=settings.es.max_retries,
        retry_on_timeout=True,
        retry_on_status=(502, 503, 504),
        serializer=OrjsonSerializer(),
    )
