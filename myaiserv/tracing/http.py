"""The API's server span: one per HTTP request, named by route template
(``POST /v1/documents/{id}``, never a raw path), through Litestar's OpenTelemetry
middleware (the contrib ASGI instrumentation: status code, a client's ``traceparent``
continued, 5xx marked as errors). Probes, metrics and static files are not traced.

The span starts before Litestar has routed the request, so it is named by its method
only (OpenTelemetry's name when the route is unknown); ``route_namer``, inside it,
renames it by the route template when the response starts.
"""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.plugins.opentelemetry import OpenTelemetryConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE

UNTRACED = [r"^/health$", r"^/ready$", r"^/metrics$", r"^/console/static/", r"^/schema"]


def method_only(scope: Scope) -> tuple[str, dict[str, Any]]:
    return str(scope.get("method", "HTTP")).strip() or "HTTP", {}


def server_span_middleware() -> DefineMiddleware:
    config = OpenTelemetryConfig(
        scope_span_details_extractor=method_only,
        exclude=UNTRACED,
        # The per-message receive/send spans double a streamed answer's span count
        # and say nothing the server span does not.
        exclude_spans=["receive", "send"],
    )
    return config.middleware


def route_namer(app: ASGIApp) -> ASGIApp:
    """Names the server span (current when this runs) by the matched route template."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()
        if scope["type"] != ScopeType.HTTP or not span.is_recording():
            await app(scope, receive, send)
            return

        async def naming_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                template = scope.get("path_template")
                if template:
                    span.update_name(f"{scope.get('method', '')} {template}".strip())
                    span.set_attribute(HTTP_ROUTE, template)
            await send(message)

        await app(scope, receive, naming_send)

    return wrapped
