"""The Elasticsearch client: its serialiser and its nodes' connections."""

from __future__ import annotations

import json

import elastic_transport
import numpy as np
import pytest

from myaiserv.config import load_settings
from myaiserv.search.client import ResolvingNode, create_es_client


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
    await client.close()
