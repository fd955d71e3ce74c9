"""An Elasticsearch node that accepts connections and answers nothing (stopping,
partitioned, hung) beside a live one: a search pays part of its budget for it, not the
search. An attempt gets all of the budget but what a retry needs; the client marks the
silent node dead and retries on the live one (the real local node)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from myaiserv.config import Settings
from myaiserv.resources import Resources
from myaiserv.search.client import create_es_client
from tests.support import search_store

pytestmark = pytest.mark.integration


@contextmanager
def silent_node() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback port that accepts every connection and never answers: (URL, the
    connections it took)."""
    server = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            taken.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", taken
    finally:
        stop.set()
        thread.join()
        for conn in taken:
            conn.close()
        server.close()


async def test_a_silent_node_costs_a_search_part_of_its_budget_not_the_search(
    settings: Settings, resources: Resources
) -> None:
    with silent_node() as (url, taken):
        beside = settings.model_copy(update={"es_url": [url, *settings.es_url]})
        es = create_es_client(beside)
        try:
            for _ in range(4):  # the client takes its nodes in turn: the silent one too
                store = search_store(es, resources, timeout_s=3)
                answers = await store.msearch(
                    {"all": {"query": {"match_all": {}}, "size": 1}}, ["documents"], None
                )
                assert "hits" in answers.by_name["all"]
        finally:
            await es.close()
        assert taken, "the client never tried the silent node"
