"""The Elasticsearch client, created per process from settings."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from elastic_transport import AiohttpHttpNode
from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from myaiserv.config import ElasticsearchSettings, Settings
from myaiserv.logging import get_logger

log = get_logger(__name__)


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


# A name service on the same host or network answers in milliseconds.
RESOLVE_TIMEOUT_S = 1.0


class StaleOnTimeoutResolver(ThreadedResolver):
    """Resolves a name for every call, and when the name service gives no answer within
    ``timeout_s`` answers with the addresses it last resolved for that name (serving stale
    data, as RFC 8767 has DNS resolvers do) instead of waiting. A container network's
    name service pauses while containers come and go (podman's aardvark-dns, for seconds
    at a time), and the C library then waits 5 s for each silent server: each new
    connection would cost a search its attempt. A name the service says does not exist
    (a stopped node) fails at once, as before; a name never resolved waits for the
    answer, as before."""

    def __init__(self, timeout_s: float = RESOLVE_TIMEOUT_S) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self._last: dict[tuple[str, int, int], list[ResolveResult]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key = (host, port, int(family))
        stale = self._last.get(key)
        lookup = asyncio.ensure_future(super().resolve(host, port, family))
        # Whoever waits, every answer refreshes the name (and a gone name forgets it).
        lookup.add_done_callback(lambda done: self._keep(key, done))
        if stale is not None:
            done, _ = await asyncio.wait([lookup], timeout=self.timeout_s)
            if not done:
                log.warning("name service slow: the last addresses", host=host)
                return stale
        return await lookup

    def _keep(self, key: tuple[str, int, int], lookup: asyncio.Future[list[ResolveResult]]) -> None:
        if lookup.cancelled():
            return
        error = lookup.exception()
        if error is None:
            self._last[key] = lookup.result()
        elif isinstance(error, socket.gaierror):
            self._last.pop(key, None)  # the name is gone: no stale answer for it


class ResolvingNode(AiohttpHttpNode):
    """The client's aiohttp node, resolving the node's name for every new connection
    rather than from a 10-second cache. A node that is gone (a stopped container, a
    replaced host) leaves the name service at once, but its cached address would take a
    connection attempt the whole attempt timeout (no host answers the address: no refusal
    comes back) before the client retried on another node. Connections are kept alive,
    so a lookup is rare; a name service that does not answer costs a lookup a second,
    not the attempt (``StaleOnTimeoutResolver``). The session is made as the library
    makes it (elastic-transport 9.x), with that one change."""

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
                resolver=StaleOnTimeoutResolver(),
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
