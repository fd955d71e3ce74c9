"""OpenAI's wire format: request parameters in, completion bodies, server-sent event
chunks and error objects out.

Errors on the OpenAI routes use OpenAI's error body (``{"error": {"message", "type",
"param", "code"}}``), so the official SDKs and chat UIs show them as they would OpenAI's,
also when a stream fails after it started (an ``error`` event before ``[DONE]``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from myaiserv.errors import AppError, DependencyUnavailableError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import Delta, GenerationParams
from myaiserv.logging import get_logger
from myaiserv.problems import exception_handlers as app_exception_handlers
from myaiserv.rag.errors import NotSupportedError, ProviderFailedError
from myaiserv.rag.request import ChatRequest
from myaiserv.rag.result import Answer
from myaiserv.rag.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Citation,
    ModelCard,
    ModelList,
    PassageOut,
    PromptRef,
    RagAnswer,
    RetrievalTrace,
    TokenUsage,
)

log = get_logger(__name__)
DONE = "[DONE]"


def error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


def error_object(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"message": message, "type": error_type(status), "param": param, "code": code}


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body = {"error": error_object(status, message, param=param, code=code)}
    return Response(body, status_code=status, headers=headers or {})


def _app_error(exc: AppError) -> dict[str, Any]:
    extra = exc.extra or {}
    code = extra.get("code")
    if isinstance(exc, DependencyUnavailableError):
        code = "service_unavailable"
    return error_object(exc.status_code, exc.detail, param=extra.get("field"), code=code)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The exception handler of the OpenAI routes: every error as OpenAI's error body."""
    if isinstance(exc, InvalidInputError):
        return openai_error(400, exc.detail, param=exc.field, code="invalid_value")
    if isinstance(exc, AppError):
        return Response(
            {"error": _app_error(exc)}, status_code=exc.status_code, headers=exc.headers
        )
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        param = next((e.get("key") for e in extra if isinstance(e, dict) and e.get("key")), None)
        detail = (
            "; ".join(str(e.get("message")) for e in extra if isinstance(e, dict)) or exc.detail
        )
        return openai_error(400, f"invalid request: {detail}", param=param, code="invalid_request")
    if isinstance(exc, HTTPException):
        return openai_error(exc.status_code, exc.detail, headers=exc.headers)
    # Dependency failures (PostgreSQL, Elasticsearch connection errors): the app's own
    # handlers know which are a 503.
    handler = next(
        (
            h
            for kind, h in app_exception_handlers.items()
            if kind is not Exception and isinstance(exc, kind)
        ),
        None,
    )
    if handler is not None and handler(request, exc).status_code == 503:
        return openai_error(
            503,
            "a backing service is unavailable; retry later",
            code="service_unavailable",
            headers={"Retry-After": "5"},
        )
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return openai_error(500, "the server failed to handle this request", code="internal_error")


def generation_params(req: ChatCompletionRequest) -> GenerationParams:
    """The sampling parameters we honour; those we cannot are refused by name."""
    if req.n not in (None, 1):
        raise NotSupportedError("n", "only n = 1 is supported")
    if req.tools or req.functions or req.tool_choice not in (None, "none"):
        raise NotSupportedError("tools", "tool and function calling are not supported")
    if req.response_format and req.response_format.get("type") not in (None, "text"):
        raise NotSupportedError("response_format", "only text responses are supported")
    max_tokens = req.max_completion_tokens or req.max_tokens
    if max_tokens is not None and max_tokens < 1:
        raise InvalidInputError("max_tokens", "must be at least 1")
    if req.temperature is not None and not 0 <= req.temperature <= 2:
        raise InvalidInputError("temperature", "must be between 0 and 2")
    stop = [req.stop] if isinstance(req.stop, str) else req.stop
    return GenerationParams(req.temperature, req.top_p, max_tokens, stop, req.seed)


def usage(answer: Answer) -> TokenUsage:
    u = answer.usage
    return TokenUsage(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.total_tokens,
    )


def extensions(answer: Answer, request: ChatRequest) -> dict[str, Any]:
    """Our fields beside OpenAI's (``AnswerExtensions``): citations, the run, cache, the
    target that answered."""
    return {
        "citations": [Citation(**c) for c in answer.citations],
        "run_id": str(answer.run_id) if answer.run_id else None,
        "cached": answer.cached,
        "provider_model": answer.target,
        "conversation_id": str(request.conversation_id) if request.conversation_id else None,
    }


def rag_answer(answer: Answer, request: ChatRequest) -> RagAnswer:
    """``/v1/rag/answer``: the answer with its passages, retrieval trace and prompt."""
    ref = request.system_prompt.ref
    return RagAnswer(
        answer=answer.text,
        model=request.model.name,
        finish_reason=answer.finish_reason,
        usage=usage(answer),
        passages=[PassageOut(**asdict(p), url=p.url) for p in answer.grounding.passages],
        retrieval=msgspec.convert(answer.grounding.trace, RetrievalTrace),
        prompt=None if ref is None else PromptRef(**ref),
        **extensions(answer, request),
    )


def sse(data: object) -> bytes:
    payload = data if isinstance(data, str) else msgspec.json.encode(data).decode()
    return f"data: {payload}\n\n".encode()


class CompletionEnvelope:
    """One chat completion's envelope (id, created, model), as a body or as chunks."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = request.model.name

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def body(self, answer: Answer) -> ChatCompletion:
        message = AssistantMessage(role="assistant", content=answer.text)
        return ChatCompletion(
            id=self.id,
            object="chat.completion",
            created=self.created,
            model=self.model,
            choices=[ChatChoice(index=0, message=message, finish_reason=answer.finish_reason)],
            usage=usage(answer),
            **extensions(answer, self.request),
        )

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse({**self._envelope("chat.completion.chunk"), "choices": [choice], **extra})

    async def events(self, items: AsyncIterator[Delta | Answer]) -> AsyncIterator[bytes]:
        """The stream as OpenAI sends it: the role, content deltas, our extensions in a
        chunk of their own, the finish reason with usage, ``[DONE]``; a failure is an
        ``error`` event before ``[DONE]``."""
        yield self.chunk({"role": "assistant", "content": ""})
        try:
            async for item in items:
                if isinstance(item, Delta):
                    yield self.chunk({"content": item.text})
                    continue
                yield sse(
                    {
                        **self._envelope("chat.completion.chunk"),
                        "choices": [],
                        **extensions(item, self.request),
                    }
                )
                yield self.chunk({}, item.finish_reason, usage=usage(item))
        except ProviderFailedError as exc:
            yield sse({"error": error_object(502, exc.detail, code="provider_error")})
        except AppError as exc:
            yield sse({"error": _app_error(exc)})
        except Exception:
            log.exception("stream failed")
            failed = error_object(500, "the server failed while streaming", code="internal_error")
            yield sse({"error": failed})
        yield sse(DONE)


def model_list(models: list[tuple[str, str, bool]], embedding_models: list[str]) -> ModelList:
    """``/v1/models``: (id, owner, retrieval) of each chat model, then the embedding
    models."""
    entries = [*models, *((name, "myaiserv", False) for name in embedding_models)]
    cards = [
        ModelCard(id=name, object="model", created=0, owned_by=owner, retrieval=rag)
        for name, owner, rag in entries
    ]
    return ModelList(object="list", data=cards)
