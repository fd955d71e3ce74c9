"""The Elasticsearch client: its serialiser and its nodes' connections."""

from __future__ import annotations

import asyncio
import json
import socket

import elastic_transport
import numpy as np
import pytest

from myaiserv.config import load_settings
from myaiserv.search.client import ResolvingNode, StaleOnTimeoutResolver, create_es_client


def test_the_es_client_writes_float32_vectors_exactly():
    """Bulk bodies carry numpy float32 vectors as they are: what Elasticsearch parses back
    (to float32) is the very vector the embedder gave."""
    client = create_es_client(load_settings(es_url="http://127.0.0.1:1"))
    serializer = client.transport.serializers.get_serializer("application/json")
    vector = np.random.default_rng(7).standard_normal(384).astype(np.float32)
    vector /= np.linalg.norm(vector)
    body = serializer.dumps({"embedding": vector, "title": "t", "n": 1})
    parsed = json.loads(body)
    assert parsed["title"] == "t" and parsed["n"] == 1
    assert np.array_equal(np.asarray(parsed["embedding"], dtype=np.float32), vector)


async def test_every_new_connection_resolves_the_node_s_name_again():
    """A node that is gone leaves the name service at once; a cached address of it would
    cost an attempt its whole timeout (see ``ResolvingNode``)."""
    client = create_es_client(load_settings(es_url="http://127.0.0.1:1"))
    node = client.transport.node_pool.get()
    assert isinstance(node, ResolvingNode)
    with pytest.raises(elastic_transport.ConnectionError):
        await node.perform_request("GET", "/")
    assert node.session is not None
    assert node.session.connector is not None
    assert node.session.connector.use_dns_cache is False
    assert isinstance(node.session.connector._resolver, StaleOnTimeoutResolver)
    await client.close()


async def test_a_silent_name_service_costs_a_lookup_a_second_not_the_attempt(monkeypatch):
    """The name service pauses (container DNS while containers come and go; the C library
    then waits 5 s a server): a name resolved before gets its last addresses within the
    resolver's bound. A name never resolved waits for the answer; a name the service says
    does not exist fails at once, and leaves no stale answer behind."""
    resolver = StaleOnTimeoutResolver(timeout_s=0.2)
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    localhost = await resolver.resolve("localhost", 9200)
    assert localhost and localhost[0]["port"] == 9200

    async def silent(*args, **kwargs):
        await asyncio.sleep(0.6)
        return await real(*args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", silent)
    started = loop.time()
    assert await resolver.resolve("localhost", 9200) == localhost  # the last answer
    assert loop.time() - started < 0.5
    started = loop.time()
    fresh = await resolver.resolve("localhost", 9201)  # never resolved: the real answer
    assert loop.time() - started >= 0.6 and fresh[0]["port"] == 9201
    monkeypatch.undo()

    resolver._last[("no-such-node.invalid", 9200, int(socket.AF_INET))] = localhost
    with pytest.raises(socket.gaierror):
        await resolver.resolve("no-such-node.invalid", 9200)
    assert ("no-such-node.invalid", 9200, int(socket.AF_INET)) not in resolver._last
