"""The application factory.

``create_app(settings)`` builds a Litestar app whose lifespan opens the process's clients
(``myaiserv.resources``) and hands them out through dependency injection.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, Message, Middleware, Receive, Scope, Send

from myaiserv import __version__, metrics
from myaiserv.audit.controller import AuditController
from myaiserv.auth.controller import KeyController
from myaiserv.auth.middleware import ApiKeyAuthenticationMiddleware
from myaiserv.config import Settings, load_settings
from myaiserv.console import router as console
from myaiserv.conversations.controller import ConversationController
from myaiserv.deadletters.controller import DeadLetterController
from myaiserv.documents.controller import DocumentController
from myaiserv.embeddings.model import Embedder
from myaiserv.health.controller import HealthController
from myaiserv.kit.deps import provide_principal, provide_resources, provide_session
from myaiserv.kit.inputguard import Wrapper, input_guard
from myaiserv.logging import configure_logging, get_logger
from myaiserv.mcp.server import McpEndpoint
from myaiserv.openapi import document_errors
from myaiserv.problems import exception_handlers
from myaiserv.prompts.controller import PromptController
from myaiserv.quotas.controller import UsageController
from myaiserv.rag.controller import OpenAIController, RagController
from myaiserv.resources import open_resources
from myaiserv.runs.controller import RunController
from myaiserv.search.controller import SearchController
from myaiserv.tracing.http import route_namer, server_span_middleware
from myaiserv.tracing.setup import start_tracing

log = get_logger(__name__)
# Probes, metrics and the schema are open; the console has its own sessions.
UNAUTHENTICATED = [r"^/health$", r"^/ready$", r"^/metrics$", r"^/schema", r"^/console"]


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # An API serves data, never pages: nothing in a response may load or run anything.
    # (The Swagger UI under /schema loads its assets, so it keeps its own policy.)
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]

# The console's pages load their scripts, styles and images from our origin, nothing else.
CONSOLE_SECURITY_HEADERS = [
    *SECURITY_HEADERS[:3],
    (b"content-security-policy", console.CONTENT_SECURITY_POLICY.encode()),
]


def _observe(name: str, security_headers: bool = True) -> Wrapper:
    """On every response: the answering instance (``X-Instance``: load-balancing is then
    visible), the server's time on the request (``Server-Timing: app;dur=<ms>``, to the
    response's start, which benchmarks read), and the HTTP metrics by route template."""
    value = name.encode()

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()

            async def send_with_header(message: Message) -> None:
                if message["type"] == "http.response.start":
                    seconds = time.perf_counter() - started
                    headers = [
                        *message.get("headers", []),
                        (b"x-instance", value),
                        (b"server-timing", f"app;dur={seconds * 1000:.2f}".encode()),
                    ]
                    path = scope.get("path", "")
                    if security_headers and path.startswith("/console"):
                        headers += CONSOLE_SECURITY_HEADERS
                    elif security_headers and not path.startswith("/schema"):
                        headers += SECURITY_HEADERS
                    message["headers"] = headers
                    route = scope.get("path_template") or "unmatched"
                    method = scope.get("method", "")
                    metrics.HTTP_REQUESTS.labels(route, method, str(message["status"])).inc()
                    metrics.HTTP_DURATION.labels(route, method).observe(seconds)
                await send(message)

            await app(scope, receive, send_with_header)

        return wrapped

    return middleware


def create_app(settings: Settings, *, embedder: Embedder | None = None) -> Litestar:
    """Build the app. ``embedder``: an already loaded model to share (tests); by default
    the lifespan loads one."""
    instance = settings.instance
    mcp = McpEndpoint(settings.limits.max_request_bytes)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        tracing = start_tracing(settings, "api")
        try:
            async with (
                open_resources(settings, embedder=embedder) as resources,
                mcp.running(resources),
            ):
                app.state.resources = resources
                log.info("started", instance=instance, pid=os.getpid(), es=settings.es_url)
                yield
                log.info("stopping", instance=instance, pid=os.getpid())
        finally:
            tracing.shutdown()

    # Tracing off adds no middleware at all.
    traced: list[Middleware] = (
        [server_span_middleware(), route_namer] if settings.tracing.enabled else []
    )

    return Litestar(
        route_handlers=[
            HealthController,
            DocumentController,
            ConversationController,
            RunController,
            PromptController,
            SearchController,
            OpenAIController,
            RagController,
            KeyController,
            AuditController,
            DeadLetterController,
            UsageController,
            mcp.route(),
            *console.console_routes(),
        ],
        lifespan=[lifespan],
        on_startup=[document_errors],
        dependencies={
            "resources": Provide(provide_resources, sync_to_thread=False),
            "db_session": Provide(provide_session),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        template_config=console.templates(),
        csrf_config=console.csrf(settings),
        middleware=[
            *traced,
            _observe(instance, settings.http.security_headers),
            # Everything but UNAUTHENTICATED needs a key.
            DefineMiddleware(ApiKeyAuthenticationMiddleware, exclude=UNAUTHENTICATED),
            input_guard(settings.limits.max_json_depth, settings.limits.max_request_bytes),
        ],
        request_max_body_size=settings.limits.max_request_bytes,
        cors_config=(
            CORSConfig(
                allow_origins=settings.http.cors_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "Cache-Control"],
                expose_headers=[
                    "X-Cache",
                    "X-Instance",
                    "Retry-After",
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                    "RateLimit-Policy",
                ],
                max_age=600,
            )
            if settings.http.cors_origins
            else None
        ),
        openapi_config=OpenAPIConfig(
            title="MyAIServ",
            version=__version__,
            description="Search and retrieval-augmented generation over your LLM data.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            use_handler_docstrings=True,
        ),
        debug=settings.debug,
        logging_config=None,  # logging is configured once per process (myaiserv.logging)
        state=State({"settings": settings}),
    )


def create_app_from_env() -> Litestar:
    """Entry point for ASGI servers (``uvicorn --factory``): settings from the environment."""
    settings = load_settings()
    configure_logging(settings.log_level, urls=settings.urls())
    return create_app(settings)
