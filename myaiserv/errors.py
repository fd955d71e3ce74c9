"""The errors our code raises on purpose: ``AppError`` subclasses that know their HTTP
status. Services and stores raise them (the search store translates every Elasticsearch
failure); ``problems.py`` renders them, and everything else, as problem details. Nothing
here imports the web framework, so a command line that reports an ``AppError`` stays
quick to start.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status_code: int = 400
    title: str = "Bad request"
    type_: str = "about:blank"

    def __init__(
        self,
        detail: str = "",
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra or {}
        self.headers = headers or {}


class NotFoundError(AppError):
    status_code = 404
    title = "Not found"


class ConflictError(AppError):
    status_code = 409
    title = "Conflict"


class DependencyUnavailableError(AppError):
    """A backing service (Elasticsearch, PostgreSQL, Redis, a provider) is down or slow."""

    status_code = 503
    title = "Service unavailable"

    def __init__(self, dependency: str, detail: str = "", *, retry_after_s: int = 5, **kw: Any):
        extra = {"dependency": dependency, **kw.pop("extra", {})}
        headers = {"Retry-After": str(retry_after_s), **kw.pop("headers", {})}
        super().__init__(detail or f"{dependency} is unavailable", extra=extra, headers=headers)
        self.dependency = dependency
