"""The Elasticsearch client, created per process from settings."""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from myaiserv.config import ElasticsearchSettings, Settings


def security_options(es: ElasticsearchSettings, urls: list[str]) -> dict[str, Any]:
    """Credentials and TLS keywords for the client (TLS ones only for https nodes: the
    client refuses them on http)."""
    options: dict[str, Any] = {}
    if es.api_key is not None:
        options["api_key"] = es.api_key.get_secret_value()
    elif es.username is not None and es.password is not None:
        options["basic_auth"] = (es.username, es.password.get_secret_value())
    if any(url.startswith("https://") for url in urls):
        options["verify_certs"] = es.verify_certs
        if es.ca_certs is not None:
            options["ca_certs"] = es.ca_certs
    return options


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
        **security_options(settings.es, settings.es_url),
    )
