"""The errors a chat call can end in, each with its HTTP status. The OpenAI routes render
them as OpenAI's error object (``extra["field"]`` is its ``param``, ``extra["code"]`` its
``code``); the native route as problem details."""

from __future__ import annotations

from myaiserv.errors import AppError, NotFoundError
from myaiserv.llm.base import ProviderError


class ModelNotFoundError(NotFoundError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"model {name!r} does not exist; available: {', '.join(known)}",
            extra={"field": "model", "code": "model_not_found"},
        )


class NotSupportedError(AppError):
    status_code = 400
    title = "Not supported"

    def __init__(self, field_: str, message: str) -> None:
        super().__init__(
            f"{field_}: {message}", extra={"field": field_, "code": "unsupported_parameter"}
        )


class ContextTooLongError(AppError):
    status_code = 400
    title = "Context too long"

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(
            f"the messages need about {tokens} tokens; this model accepts at most {limit}",
            extra={"field": "messages", "code": "context_length_exceeded"},
        )


class RateLimitedError(AppError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "rate limit reached for this tenant; retry later",
            extra={"code": "rate_limit_exceeded"},
            headers={"Retry-After": str(retry_after_s)},
        )


class ProviderFailedError(AppError):
    """The provider (every target) failed: its status (429, 502, 503, 504) to the client."""

    title = "Provider error"

    def __init__(self, error: ProviderError) -> None:
        headers = {}
        if error.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
        super().__init__(
            f"the model provider failed: {error}",
            extra={"code": "provider_error", "provider": error.provider},
            headers=headers,
        )
        self.status_code = error.status
        self.error = error
