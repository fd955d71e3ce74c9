"""The Elasticsearch client, created per process from settings."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
from elastic_transport import AiohttpHttpNode
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


# aiohttp's advice, as the library follows it: CPython before 3.12.7 (and 3.13.0) can leak
# TLS connections that the peer closed unless the connector cleans them up.
CLEANUP_CLOSED = sys.version_info < (3, 12, 7) or (3, 13, 0) <= sys.version_info < (3, 13, 1)


class ResolvingNode(AiohttpHttpNode):
    """The client's aiohttp node, resolving the node's name for every new connection
    rather than from a 10-second cache. A node that is gone (a stopped container, a
    replaced host) leaves the name service at once, but its cached address would take a
    connection attempt the whole attempt timeout (no host answers the address: no refusal
    comes back) before the client retried on another node. Connections are kept alive,
    so a lookup is rare. The session is made as the library makes it (elastic-transport
    9.x), with that one change."""

    def _create_aiohttp_session(self) -> None:
        # The library declares the loop set while it starts as None, and sets it here.
        self._loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(
            headers=self.headers,
            skip_auto_headers=("accept", "accept-encoding", "user-agent"),
            auto_decompress=True,
            loop=self._loop,
            cookie_jar=aiohttp.DummyCookieJar(),
            connector=aiohttp.TCPConnector(
                limit_per_host=self._connections_per_node,
                use_dns_cache=False,
                enable_cleanup_closed=CLEANUP_CLOSED,
                ssl=self._ssl_context or False,
            ),
        )


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
        node_class=ResolvingNode,
        **security_options(settings.es, settings.es_url),
    )
