"""PostgreSQL unreachable in the ways a restart shows it to a client: nothing listening,
a listener that never answers (the connect times out), a listener that drops the
connection at once. Each is a 503 naming postgres with Retry-After, never a 500: asyncpg
lets the socket errors of a connect through untranslated, so the API must recognise them
itself."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.app import create_app
from myaiserv.auth.keys import generate_key
from myaiserv.config import Settings
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import free_port

pytestmark = pytest.mark.integration


@asynccontextmanager
async def fake_postgres(behaviour: str) -> AsyncIterator[int]:
    """A loopback port where PostgreSQL should be: ``refused`` (nothing listens),
    ``silent`` (accepts, never answers) or ``reset`` (accepts, closes with a RST)."""
    if behaviour == "refused":
        yield free_port()
        return
    held: list[asyncio.StreamWriter] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if behaviour == "silent":
            held.append(writer)
            return
        sock = writer.get_extra_info("socket")
        # Linger 0: close() sends a RST, as a server process killed mid-handshake does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()


@pytest.mark.parametrize("behaviour", ["refused", "silent", "reset"])
async def test_an_unreachable_postgres_is_a_503_not_a_500(
    settings: Settings, embedder: Embedder, behaviour: str
) -> None:
    async with fake_postgres(behaviour) as port:
        down = settings.model_copy(
            update={
                "database_url": f"postgresql+asyncpg://myaiserv:x@127.0.0.1:{port}/myaiserv",
                "db": settings.db.model_copy(update={"connect_timeout_s": 0.5}),
            }
        )
        app = create_app(down, embedder=embedder)
        async with AsyncTestClient(app=app) as client:
            headers = {"Authorization": "Bearer " + generate_key().plaintext}
            for method, path, body in [
                ("GET", "/v1/documents", None),
                ("POST", "/v1/documents", {"title": "t", "text": "some text"}),
                ("POST", "/v1/search", {"query": "retrieval"}),
            ]:
                resp = await client.request(method, path, json=body, headers=headers)
                assert resp.status_code == 503, (behaviour, path, resp.text)
                assert resp.headers["content-type"].startswith("application/problem+json")
                assert resp.json()["dependency"] == "postgres"
                assert int(resp.headers["retry-after"]) > 0
            ready = await client.get("/ready")
            assert ready.status_code == 503 and ready.json()["failing"] == ["postgres"]
