"""Every listing and search endpoint pages with the same cursors, and refuses a cursor that
is not one of its own the same way: a 422 problem naming the ``cursor`` field. Search
cursors are signed: one a client edited is a 400 naming ``cursor``."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from myaiserv.resources import Resources
from tests.support import drain

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


def _edited(cursor: str, **changes: Any) -> str:
    import base64
    import json

    payload, _, signature = cursor.partition(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw = json.dumps({**data, **changes}, separators=(",", ":")).encode()
    return f"{base64.urlsafe_b64encode(raw).decode().rstrip('=')}.{signature}"


async def test_an_edited_search_cursor_is_a_400_naming_the_cursor(
    api: AsyncTestClient, resources: Resources
):
    """Whatever a client changes (where the next page starts, the window it names, a point
    in time, the sort values to go on after), the signature no longer holds; the window
    stays the one the first page read, never above ``max_window``."""
    docs = [{"title": f"Edit {i}", "text": f"Tampering ledger line {i}."} for i in range(12)]
    resp = await api.post("/v1/documents/batch", json={"documents": docs})
    assert resp.status_code == 201, resp.text
    await drain(resources)
    body = {"query": "tampering ledger", "kinds": ["documents"], "size": 2}
    first = await api.post("/v1/search", json=body)
    cursor = first.json()["next_cursor"]
    deep_body = {**body, "mode": "bm25", "window": 2}
    deep = await api.post("/v1/search", json=deep_body)
    deep_cursor = (
        await api.post("/v1/search", json={**deep_body, "cursor": deep.json()["next_cursor"]})
    ).json()["next_cursor"]
    assert cursor and deep_cursor
    edits = [
        (body, _edited(cursor, o=0)),
        (body, _edited(cursor, o=4)),
        (body, _edited(cursor, w="another-window")),
        (body, _edited(cursor, o=2, w=resources.settings.search.max_window + 1)),
        (body, _edited(cursor, p="a-point-in-time")),
        (deep_body, _edited(deep_cursor, p="a-point-in-time")),
        (deep_body, _edited(deep_cursor, a=[99.0, 1])),
        (body, cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")),
    ]
    for request, edited in edits:
        resp = await api.post("/v1/search", json={**request, "cursor": edited})
        assert resp.status_code == 400, (edited, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        problem = resp.json()
        assert [e["field"] for e in problem["errors"]] == ["cursor"], problem
    # Unedited, both still page.
    assert (await api.post("/v1/search", json={**body, "cursor": cursor})).status_code == 200
    resp = await api.post("/v1/search", json={**deep_body, "cursor": deep_cursor})
    assert resp.status_code == 200, resp.text
