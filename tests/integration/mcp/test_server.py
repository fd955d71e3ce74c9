"""``/mcp`` driven by the official MCP client SDK over real HTTP (uvicorn), against the real
stack: the tools, resources and prompts give real results; tenants are isolated; scopes,
bad arguments, keys and rate limits are refused with MCP errors of the HTTP API's meaning."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult
from sqlalchemy import func, select

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.db.models import Document
from myaiserv.embeddings.model import Embedder
from myaiserv.mcp.errors import FORBIDDEN, RATE_LIMITED, RESOURCE_NOT_FOUND, UNAUTHORIZED
from myaiserv.resources import Resources
from tests.support import TenantKey, drain, make_tenant, uvicorn_thread

pytestmark = pytest.mark.integration

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def base_url(settings: Settings, embedder: Embedder, resources: Resources) -> Iterator[str]:
    with uvicorn_thread(create_app(settings, embedder=embedder)) as url:
        yield url


@asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session on ``url``/mcp, sending ``headers`` (the key)."""
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult) and not result.is_error, result
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments: Any) -> MCPError:
    with pytest.raises(MCPError) as caught:
        await session.call_tool(tool, arguments)
    return caught.value


async def test_lists_tools_resources_and_prompts(base_url: str, tenant: TenantKey):
    async with mcp_session(base_url, tenant.headers) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) == {"search", "search_runs", "get_document", "answer", "add_document"}
        assert tools["search"].input_schema["required"] == ["query"]
        assert tools["add_document"].annotations.read_only_hint is False
        assert tools["search"].annotations.read_only_hint is True
        templates = (await mcp.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["myaiserv://documents/{id}"]
        assert (await mcp.list_prompts()).prompts == []


async def test_tools_add_find_read_answer_and_search_runs(
    base_url: str, tenant: TenantKey, resources: Resources
):
    marker = f"zorbulite{uuid.uuid4().hex[:6]}"
    text = (
        f"The {marker} crystal glows green under ultraviolet light. "
        "It was first found in the caves of northern Norway."
    )
    async with mcp_session(base_url, tenant.headers) as mcp:
        added = await call(
            mcp, "add_document", text=text, title="Zorbulite", source="https://example.org/z"
        )
        assert added["deduplicated"] is False
        doc_id = added["id"]
        await drain(resources)

        found = await call(mcp, "search", query=f"{marker} crystal", size=5)
        top = found["passages"][0]
        assert top["document_id"] == doc_id and top["kind"] == "documents"
        assert top["source"] == "https://example.org/z" and marker in top["text"]
        assert top["id"]  # the chunk's id

        doc = await call(mcp, "get_document", id=doc_id)
        assert doc["text"] == text and doc["title"] == "Zorbulite"

        read = await mcp.read_resource(f"myaiserv://documents/{doc_id}")
        assert read.contents[0].text == text
        listed = (await mcp.list_resources()).resources
        assert f"myaiserv://documents/{doc_id}" in {str(r.uri) for r in listed}

        answer = await call(mcp, "answer", question=f"What does {marker} do under ultraviolet?")
        assert doc_id in {c["document_id"] for c in answer["citations"]}
        assert "[1]" in answer["answer"] and answer["run_id"]
        await drain(resources)

        runs = await call(mcp, "search_runs", query=marker, aggregations=["totals"])
        assert [h["id"] for h in runs["hits"]] == [answer["run_id"]]
        assert runs["aggregations"]["totals"]["count"] == 1
        lineage = await call(mcp, "search_runs", filters={"document_id": doc_id})
        assert answer["run_id"] in {h["id"] for h in lineage["hits"]}


async def test_prompts_render_by_label_and_version(base_url: str, tenant: TenantKey, api):
    created = await api.post(
        "/v1/prompts",
        json={"name": "greet", "description": "A greeting", "template": "Hello {who}!"},
    )
    assert created.status_code == 201, created.text
    prompt_id = created.json()["id"]
    v2 = await api.post(
        f"/v1/prompts/{prompt_id}/versions",
        json={"template": "Hi {who}, from v2.", "labels": ["staging"]},
    )
    assert v2.status_code == 201, v2.text
    async with mcp_session(base_url, tenant.headers) as mcp:
        [listed] = (await mcp.list_prompts()).prompts
        assert listed.name == "greet"
        assert [(a.name, a.required) for a in listed.arguments] == [
            ("who", True),
            ("@label", False),
            ("@version", False),
        ]

        async def text(**arguments: str) -> str:
            result = await mcp.get_prompt("greet", {"who": "Ada", **arguments})
            return result.messages[0].content.text

        assert await text() == "Hello Ada!"  # production -> v1
        assert await text(**{"@label": "staging"}) == "Hi Ada, from v2."
        assert await text(**{"@version": "2"}) == "Hi Ada, from v2."
        with pytest.raises(MCPError) as missing:
            await mcp.get_prompt("greet", {})
        assert missing.value.code == INVALID_PARAMS
        assert missing.value.data["field"] == "variables.who"
        with pytest.raises(MCPError) as unknown:
            await mcp.get_prompt("nope", {})
        assert unknown.value.code == RESOURCE_NOT_FOUND and unknown.value.data["status"] == 404
        # Without a production label, the latest version is the one listed and rendered.
        removed = await api.delete(f"/v1/prompts/{prompt_id}/labels/production")
        assert removed.status_code in (200, 204), removed.text
        [listed] = (await mcp.list_prompts()).prompts
        assert "version 2" in (listed.description or "")
        assert await text() == "Hi Ada, from v2."


async def test_tenants_are_isolated(base_url: str, resources: Resources):
    a, b = await make_tenant(resources), await make_tenant(resources)
    marker = f"quillfeather{uuid.uuid4().hex[:6]}"
    async with mcp_session(base_url, a.headers) as mcp_a:
        doc_id = (await call(mcp_a, "add_document", text=f"The {marker} is tenant A's."))["id"]
    await drain(resources)
    async with mcp_session(base_url, b.headers) as mcp_b:
        assert (await call(mcp_b, "search", query=marker))["passages"] == []
        not_found = await refused(mcp_b, "get_document", id=doc_id)
        assert not_found.code == RESOURCE_NOT_FOUND and not_found.data["status"] == 404
        with pytest.raises(MCPError) as unreadable:
            await mcp_b.read_resource(f"myaiserv://documents/{doc_id}")
        assert unreadable.value.code == RESOURCE_NOT_FOUND
        assert (await mcp_b.list_resources()).resources == []


async def test_a_read_only_key_cannot_add_documents(base_url: str, resources: Resources):
    reader = await make_tenant(resources, scopes=["read"])
    async with mcp_session(base_url, reader.headers) as mcp:
        forbidden = await refused(mcp, "add_document", text="Should never be stored.")
        assert forbidden.code == FORBIDDEN and forbidden.data["status"] == 403
        assert "'write' scope" in forbidden.message
        # Reading is allowed.
        assert (await call(mcp, "search", query="anything"))["passages"] == []
    async with resources.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Document).where(Document.tenant_id == reader.id)
        )
    assert count == 0


async def test_bad_arguments_name_the_field(base_url: str, tenant: TenantKey):
    async with mcp_session(base_url, tenant.headers) as mcp:
        for tool, arguments, field in [
            ("search", {"query": "x", "size": "ten"}, "size"),
            ("search", {"query": "x", "filters": {"colour": ["red"]}}, "filters.colour"),
            ("search", {"size": 3}, "query"),
            ("search", {"query": "x", "kinds": ["planets"]}, "kinds"),
            ("get_document", {"id": "not-a-uuid"}, "id"),
            ("add_document", {"text": ""}, "text"),
            ("search_runs", {"sort": "colour"}, "sort"),
        ]:
            error = await refused(mcp, tool, **arguments)
            assert error.code == INVALID_PARAMS, (tool, arguments, error.data)
            assert error.data["field"].startswith(field), (tool, arguments, error.data)
        with pytest.raises(MCPError) as bad_uri:
            await mcp.read_resource("myaiserv://documents/42")
        assert bad_uri.value.code == INVALID_PARAMS and bad_uri.value.data["field"] == "uri"


async def test_a_missing_or_invalid_key_is_a_401(base_url: str):
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for headers in [{}, {"Authorization": "Bearer mas_000000000000_notakey"}]:
            resp = await http.post("/mcp", json=INITIALIZE, headers={**ACCEPT, **headers})
            assert resp.status_code == 401, resp.text
            assert resp.headers["www-authenticate"] == "Bearer"
            assert resp.json()["error"]["code"] == UNAUTHORIZED
    # The SDK's client raises the server's error out of its task group.
    errors: list[MCPError] = []
    try:
        async with mcp_session(base_url, {"X-API-Key": "mas_000000000000_notakey"}):
            pass
    except* MCPError as group:
        errors = leaves(group)
    assert [(e.code, e.data["status"]) for e in errors] == [(UNAUTHORIZED, 401)]
    assert errors[0].message == "The API key is not valid."


def leaves(group: BaseExceptionGroup[MCPError]) -> list[MCPError]:
    found: list[MCPError] = []
    for exc in group.exceptions:
        found += leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


async def test_rate_limits_apply(settings: Settings, embedder: Embedder, resources: Resources):
    tenant = await make_tenant(resources)
    limited = settings.model_copy(
        update={"rate_limits": settings.rate_limits.model_copy(update={"per_key_per_minute": 4})}
    )
    with uvicorn_thread(create_app(limited, embedder=embedder)) as url:
        async with mcp_session(url, tenant.headers) as mcp:
            answered, errors = 0, []
            for _ in range(5):
                try:
                    await mcp.list_tools()
                    answered += 1
                except MCPError as exc:
                    errors.append(exc)
    # The handshake counted too: 4 requests a minute leave room for a call or two.
    assert answered >= 1 and errors
    assert {(e.code, e.data["status"]) for e in errors} == {(RATE_LIMITED, 429)}
    assert errors[0].data["retry_after_s"] >= 1
