"""The API's server span: one per HTTP request, named by route template
(``POST /v1/documents/{id}``, never a raw path), through Litestar's OpenTelemetry
middleware (the contrib ASGI instrumentation: status code, a client's ``traceparent``
continued, 5xx marked as errors). Probes, metrics and static files are not traced."""

from __future__ import annotations

from typing import Any

from litestar.middleware.base import DefineMiddleware
from litestar.plugins.opentelemetry import OpenTelemetryConfig
from litestar.types import Scope
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE

UNTRACED = [r"^/health$", r"^/ready$", r"^/metrics$", r"^/console/static/", r"^/schema"]


def route_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The span's name and route attribute. Litestar has routed the request before
    app middleware runs, so the template is known."""
    template = scope.get("path_template") or "unmatched"
    method = str(scope.get("method", "")).strip()
    name = f"{method} {template}" if method else template
    return name, {HTTP_ROUTE: template}


def server_span_middleware() -> DefineMiddleware:
    config = OpenTelemetryConfig(
        scope_span_details_extractor=route_details,
        exclude=UNTRACED,
        # The per-message receive/send spans double a streamed answer's span count
        # and say nothing the server span does not.
        exclude_spans=["receive", "send"],
    )
    return config.middleware
