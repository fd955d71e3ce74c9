"""The one mapping of our errors to MCP (JSON-RPC) errors, with the HTTP API's meaning.

Every error keeps its HTTP status, title and problem fields in ``data`` (``status``,
``field`` for an invalid argument, ``retry_after_s`` for a 429 or 503), and gets a code
from the status: invalid arguments are JSON-RPC's ``-32602``, a missing record MCP's
``-32002``, and the rest codes of our own in the server range. Errors raised inside a tool
become an ``MCPError``; refusals before the MCP layer (no key, rate limited) keep their
HTTP status, with a JSON-RPC error as the body so MCP clients surface them too.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import sqlalchemy.exc
from litestar import Request, Response
from litestar.exceptions import HTTPException
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST

from myaiserv.errors import AppError, DependencyUnavailableError
from myaiserv.logging import get_logger
from myaiserv.problems import exception_handlers as app_exception_handlers

log = get_logger(__name__)

RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource
UNAUTHORIZED = -32011
FORBIDDEN = -32013
CONFLICT = -32009
RATE_LIMITED = -32029
UNAVAILABLE = -32053

CODES = {
    400: INVALID_PARAMS,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: RESOURCE_NOT_FOUND,
    409: CONFLICT,
    413: INVALID_PARAMS,
    422: INVALID_PARAMS,
    429: RATE_LIMITED,
    503: UNAVAILABLE,
    504: UNAVAILABLE,
}


def code_of(status: int) -> int:
    if status in CODES:
        return CODES[status]
    return INVALID_REQUEST if status < 500 else INTERNAL_ERROR


def error_data(
    status: int, title: str, extra: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status, "title": title, **extra}
    errors = extra.get("errors")
    if "field" not in data and isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, dict) and first.get("field"):
            data["field"] = first["field"]
    retry_after = headers.get("Retry-After") or headers.get("retry-after")
    if retry_after is not None and retry_after.isdigit():
        data["retry_after_s"] = int(retry_after)
    return data


def mcp_error(exc: Exception) -> MCPError:
    """An exception raised inside a tool, resource or prompt, as the MCP error to answer."""
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        log.warning("postgres unavailable", error=str(exc)[:300])
        exc = DependencyUnavailableError("postgres")
    if isinstance(exc, AppError):
        status, title, detail = exc.status_code, exc.title, exc.detail
        data = error_data(status, title, exc.extra, exc.headers)
    elif isinstance(exc, HTTPException):
        status, detail = exc.status_code, str(exc.detail)
        data = error_data(status, HTTPStatus(status).phrase, {}, dict(exc.headers or {}))
    else:
        log.error("unhandled error in an MCP call", exc_info=exc)
        status, detail = 500, "The server failed to handle this request; it has been logged."
        data = {"status": 500, "title": "Internal server error"}
    return MCPError(code=code_of(status), message=detail, data=data)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The exception handler of ``/mcp``: the app's own handler decides status, detail and
    headers (a 401 with ``WWW-Authenticate``, a 429 with ``Retry-After``); the body is a
    JSON-RPC error (its request's id is unknown here, so null)."""
    handler = next(
        (
            app_exception_handlers[kind]
            for kind in type(exc).__mro__
            if kind in app_exception_handlers
        ),
        app_exception_handlers[Exception],
    )
    problem = handler(request, exc)
    body = problem.content if isinstance(problem.content, dict) else {}
    status = problem.status_code or 500
    headers = dict(problem.headers)
    extra = {
        k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "instance")
    }
    error = {
        "code": code_of(status),
        "message": str(body.get("detail", "")),
        "data": error_data(status, str(body.get("title", "")), extra, headers),
    }
    headers.pop("content-type", None)
    return Response(
        {"jsonrpc": "2.0", "id": None, "error": error},
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
