"""Every listing and search endpoint pages with the same cursors, and refuses a cursor that
is not one of its own the same way: a 422 problem naming the ``cursor`` field."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.integration

Send = Callable[[str], Awaitable[httpx.Response]]

GARBLED = [
    "garbage!",
    "eyJhIjpbXX0",  # base64url JSON, but not a cursor of ours
    "eyJ2IjoxfQ",  # our envelope ({"v": 1}) without a position
    "A" * 20_000,
]


async def endpoints(api: AsyncTestClient) -> dict[str, Send]:
    """Each paged endpoint, as a function sending one cursor."""
    prompt = await api.post("/v1/prompts", json={"name": "cursors", "template": "{question}"})
    assert prompt.status_code == 201, prompt.text
    pid = prompt.json()["id"]
    conversation = await api.post("/v1/conversations", json={"title": "cursors"})
    assert conversation.status_code == 201, conversation.text
    cid = conversation.json()["id"]

    def get(path: str) -> Send:
        return lambda cursor: api.get(path, params={"cursor": cursor})

    def post(path: str, body: dict[str, Any]) -> Send:
        return lambda cursor: api.post(path, json={**body, "cursor": cursor})

    return {
        "documents": get("/v1/documents"),
        "prompts": get("/v1/prompts"),
        "prompt versions": get(f"/v1/prompts/{pid}/versions"),
        "conversations": get("/v1/conversations"),
        "messages": get(f"/v1/conversations/{cid}/messages"),
        "runs": get("/v1/runs"),
        "audit": get("/v1/admin/audit"),
        "search": post("/v1/search", {"query": "anything"}),
        "runs search": post("/v1/runs/search", {"query": "anything"}),
    }


def assert_refused(resp: httpx.Response, where: str) -> None:
    assert resp.status_code == 422, (where, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json"), where
    body = resp.json()
    assert [e["field"] for e in body["errors"]] == ["cursor"], (where, body)
    assert body["detail"].startswith("cursor: "), (where, body)


async def test_a_garbled_cursor_is_the_same_422_everywhere(api: AsyncTestClient):
    for name, send in (await endpoints(api)).items():
        for cursor in GARBLED:
            assert_refused(await send(cursor), f"{name} <- {cursor[:20]}")


async def test_a_cursor_of_another_endpoint_is_refused(api: AsyncTestClient):
    """Cursors are opaque, but each endpoint knows its own: a record list's cursor means
    nothing to a version list or a search, and the other way round."""
    send = await endpoints(api)
    for n in range(2):
        text = f"cursor text {uuid.uuid4()}"
        resp = await api.post("/v1/documents", json={"title": f"d{n}", "text": text})
        assert resp.status_code == 201, resp.text
    listed = (await api.get("/v1/documents", params={"limit": 1})).json()
    pid = (await api.get("/v1/prompts")).json()["items"][0]["id"]
    for n in range(2):
        resp = await api.post(f"/v1/prompts/{pid}/versions", json={"template": f"v{n}"})
        assert resp.status_code == 201, resp.text
    versions = (await api.get(f"/v1/prompts/{pid}/versions", params={"limit": 1})).json()
    records, below = listed["next_cursor"], versions["next_cursor"]
    assert records and below

    for name in ("prompt versions", "audit", "search", "runs search"):
        assert_refused(await send[name](records), f"{name} <- a documents cursor")
    for name in ("documents", "messages", "runs", "search", "runs search"):
        assert_refused(await send[name](below), f"{name} <- a versions cursor")
