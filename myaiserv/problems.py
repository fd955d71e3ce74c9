"""Errors as problem details (RFC 9457): one place maps exceptions to HTTP responses.

Controllers never build error responses by hand: ``AppError`` subclasses (``errors.py``)
know their status, database and framework exceptions are mapped here. Unexpected
exceptions become a 500 whose body names nothing internal; the traceback goes to the log
only.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import sqlalchemy.exc
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from myaiserv.errors import AppError, DependencyUnavailableError
from myaiserv.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


def problem(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    type_: str = "about:blank",
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update(extra or {})
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _app_error(request: Request[Any, Any, Any], exc: AppError) -> Response[dict[str, Any]]:
    return problem(
        request,
        exc.status_code,
        exc.title,
        exc.detail,
        extra=exc.extra,
        headers=exc.headers,
        type_=exc.type_,
    )


def _validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    fields = [
        {"field": e.get("key") or e.get("source") or "body", "message": e.get("message", "")}
        for e in errors
        if isinstance(e, dict)
    ]
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or str(exc.detail)
    return problem(request, 400, "Invalid request", detail, extra={"errors": fields})


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    return problem(request, exc.status_code, title, str(exc.detail), headers=headers or None)


def _database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Connection-level failures of PostgreSQL: the dependency is down, say so (503)."""
    log.warning("postgres unavailable", error=str(exc)[:300], path=request.url.path)
    return _app_error(request, DependencyUnavailableError("postgres"))


def _dbapi_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Other driver errors: connection-class states (08: connection exception, 57:
    shutting down, cannot connect now) or a dropped connection mean PostgreSQL is
    unavailable (503); data exceptions (22) are the input's (400); anything else is a bug
    (500)."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    if code[:2] in ("08", "57") or getattr(exc, "connection_invalidated", False):
        return _database_error(request, exc)
    if code[:2] == "22":  # data exception: the value given (the driver may not say DataError)
        return _data_error(request, exc)
    return _unexpected(request, exc)


def _data_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """PostgreSQL refused a value (a NUL character in text, a number out of range): the
    client's input, so a 400 — without PostgreSQL's message, which quotes SQL."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    if code in ("22021", "22P05"):
        detail = "a text value contains a character that cannot be stored (NUL, \\u0000)"
    elif code == "22003":
        detail = "a number is out of range for its field"
    else:
        detail = "a value cannot be stored as given"
    log.info("postgres refused a value", sqlstate=code, path=request.url.path)
    return problem(request, 400, "Invalid request", detail)


def _os_error(request: Request[Any, Any, Any], exc: OSError) -> Response[dict[str, Any]]:
    """A socket error or timeout (``TimeoutError`` is an ``OSError``) raised inside the
    PostgreSQL driver means PostgreSQL is unreachable (503): asyncpg lets these through
    untranslated (connection refused, a connect that times out while the server starts,
    a reset mid-handshake). Raised anywhere else, it is a bug (500)."""
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith("asyncpg."):
            return _database_error(request, exc)
        tb = tb.tb_next
    return _unexpected(request, exc)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error", path=request.url.path, method=request.method, exc_info=exc)
    return problem(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal server error",
        "The server failed to handle this request; it has been logged.",
    )


# Each handler renders one exception as problem details.
Handler = Callable[[Request[Any, Any, Any], Any], Response[dict[str, Any]]]
exception_handlers: dict[type[Exception], Handler] = {
    AppError: _app_error,
    sqlalchemy.exc.OperationalError: _database_error,
    sqlalchemy.exc.InterfaceError: _database_error,
    sqlalchemy.exc.TimeoutError: _database_error,
    # After the connection-level classes: first match wins where handlers are scanned.
    sqlalchemy.exc.DataError: _data_error,
    sqlalchemy.exc.DBAPIError: _dbapi_error,
    OSError: _os_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
