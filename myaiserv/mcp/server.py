"""The MCP server and its endpoint: the SDK's low-level ``Server`` with our handlers, its
Streamable HTTP session manager in stateless mode (every POST is a fresh transport, JSON
answers: any instance behind nginx can serve any request, and nothing is kept in memory
between them), run inside the app's lifespan, and the Litestar mount at ``/mcp``.

``/mcp`` is behind the app's middleware, so the API key, the rate limits and the failed-key
throttle are exactly ``/v1``'s; the handlers read the ``Principal`` off the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
)

from myaiserv import __version__
from myaiserv.errors import DependencyUnavailableError
from myaiserv.mcp import documents, prompts
from myaiserv.mcp.context import Ctx, caller_of
from myaiserv.mcp.errors import handle_exception, mcp_error
from myaiserv.mcp.tools import TOOLS
from myaiserv.problems import exception_handlers as app_exception_handlers
from myaiserv.resources import Resources

PATH = "/mcp"
INSTRUCTIONS = (
    "MyAIServ: search this tenant's knowledge base (search), read documents (get_document "
    "or the myaiserv://documents/{id} resource), answer questions with citations (answer), "
    "search past LLM runs (search_runs) and store documents (add_document). Prompts are "
    "the tenant's versioned prompt templates."
)

P = ParamSpec("P")
R = TypeVar("R")


def mapped(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Any error a handler raises as the MCP error of the same meaning (errors.py)."""

    @wraps(handler)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await handler(*args, **kwargs)
        except Exception as exc:
            raise mcp_error(exc) from exc

    return wrapped


@mapped
async def list_tools(ctx: Ctx, params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=[spec.definition() for spec in TOOLS.values()])


@mapped
async def call_tool(ctx: Ctx, params: CallToolRequestParams) -> CallToolResult:
    spec = TOOLS.get(params.name)
    if spec is None:
        raise MCPError(INVALID_PARAMS, f"unknown tool {params.name[:100]!r}", {"field": "name"})
    return await spec.call(caller_of(ctx), params.arguments)


@mapped
async def list_resources(ctx: Ctx, params: PaginatedRequestParams | None) -> ListResourcesResult:
    return await documents.list_documents(caller_of(ctx), params.cursor if params else None)


@mapped
async def list_resource_templates(
    ctx: Ctx, params: PaginatedRequestParams | None
) -> ListResourceTemplatesResult:
    caller_of(ctx).require("read")
    return documents.templates()


@mapped
async def read_resource(ctx: Ctx, params: ReadResourceRequestParams) -> ReadResourceResult:
    return await documents.read_document(caller_of(ctx), str(params.uri))


@mapped
async def list_prompts(ctx: Ctx, params: PaginatedRequestParams | None) -> ListPromptsResult:
    return await prompts.list_prompts(caller_of(ctx), params.cursor if params else None)


@mapped
async def get_prompt(ctx: Ctx, params: GetPromptRequestParams) -> GetPromptResult:
    return await prompts.get_prompt(caller_of(ctx), params.name, params.arguments)


def build_server(resources: Resources) -> Server[Resources]:
    """The MCP server; its lifespan state, which every handler gets, is ``resources``."""

    @asynccontextmanager
    async def lifespan(_: Server[Resources]) -> AsyncIterator[Resources]:
        yield resources

    def tool_schema(name: str) -> dict[str, Any] | None:
        spec = TOOLS.get(name)
        return None if spec is None else spec.definition().input_schema

    return Server(
        "myaiserv",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        get_tool_input_schema=tool_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


class McpEndpoint:
    """``/mcp`` of one app: the session manager exists while the app's lifespan runs."""

    def __init__(self, max_request_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes
        self.manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self, resources: Resources) -> AsyncIterator[None]:
        # A manager runs once: each lifespan gets a new one.
        manager = StreamableHTTPSessionManager(
            app=build_server(resources),
            stateless=True,
            json_response=True,
            max_request_body_size=self.max_request_bytes,
        )
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None

    def route(self) -> ASGIRouteHandler:
        endpoint = self

        @asgi(
            PATH,
            is_mount=True,
            copy_scope=True,  # the SDK's transport gets a copy: it cannot change ours
            exception_handlers=dict.fromkeys(app_exception_handlers, handle_exception),
        )
        async def mcp(scope: Scope, receive: Receive, send: Send) -> None:
            """The Model Context Protocol (Streamable HTTP, stateless, JSON answers)."""
            if endpoint.manager is None:
                raise DependencyUnavailableError("mcp", "the MCP server is not running")
            await endpoint.manager.handle_request(scope, receive, send)  # type: ignore[arg-type]

        return mcp
