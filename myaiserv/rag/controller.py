"""The OpenAI-compatible API (``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings``)
and the native ``/v1/rag/answer``.

Errors on the OpenAI routes use OpenAI's error body (``{"error": {"message", "type",
"param", "code"}}``), so the official SDKs and chat UIs show them as they would OpenAI's.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import numpy as np
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.errors import AppError
from myaiserv.errors import exception_handlers as app_exception_handlers
from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import Delta, GenerationParams
from myaiserv.logging import get_logger
from myaiserv.rag.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingsRequest,
    ModelList,
    RagAnswer,
    RagAnswerRequest,
)
from myaiserv.rag.service import (
    Answer,
    NotSupportedError,
    Prepared,
    ProviderFailedError,
    RagService,
)
from myaiserv.resources import Resources

log = get_logger(__name__)
MAX_EMBEDDING_INPUTS = 2048


def _error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body = {
        "error": {"message": message, "type": _error_type(status), "param": param, "code": code}
    }
    return Response(body, status_code=status, headers=headers or {})


def _handle(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, InvalidInputError):
        return openai_error(400, exc.detail, param=exc.field, code="invalid_value")
    if isinstance(exc, AppError):
        extra = exc.extra or {}
        return openai_error(
            exc.status_code,
            exc.detail,
            param=extra.get("field"),
            code=extra.get("code"),
            headers=exc.headers,
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
    log.exception("unhandled error", path=request.url.path)
    return openai_error(500, "the server failed to handle this request", code="internal_error")


async def provide_rag_service(resources: Resources, principal: Principal) -> RagService:
    return RagService(resources, principal.tenant_id)


def _params(req: ChatCompletionRequest) -> GenerationParams:
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


def _usage(answer: Answer) -> dict[str, int]:
    u = answer.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


def _extensions(answer: Answer, p: Prepared) -> dict[str, Any]:
    return {
        "citations": answer.citations,
        "run_id": str(answer.run_id) if answer.run_id else None,
        "cached": answer.cached,
        "provider_model": answer.target,
        "conversation_id": str(p.conversation_id) if p.conversation_id else None,
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else msgspec.json.encode(data).decode()
    return f"data: {payload}\n\n".encode()


class OpenAIController(Controller):
    path = "/v1"
    tags = ["openai"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_rag_service)}  # noqa: RUF012
    # Every class the app maps (handlers are looked up by the exception's class first,
    # across layers), so each of them gets OpenAI's error body on these routes.
    exception_handlers = dict.fromkeys(app_exception_handlers, _handle)

    @post(
        "/chat/completions",
        guards=[requires("write")],
        status_code=200,
        responses={
            200: ResponseSpec(ChatCompletion, description="The answer", generate_examples=False)
        },
    )
    async def chat_completions(
        self, data: ChatCompletionRequest, service: NamedDependency[RagService]
    ) -> Response[Any]:
        """OpenAI-compatible chat completions, grounded in the tenant's knowledge base for
        knowledge-base models (or with the ``retrieval`` extension). The answer cites its
        sources as ``[n]``; ``citations`` lists them (streamed: in a chunk of their own
        before ``[DONE]``). Extensions: ``retrieval`` {enabled, kinds, filters, mode, k},
        ``prompt`` {name, label, version, variables}, ``conversation_id``."""
        params = _params(data)
        p = await service.prepare(
            model=data.model,
            messages=data.messages,
            params=params,
            retrieval=data.retrieval,
            prompt=data.prompt,
            conversation_id=data.conversation_id,
        )
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        model = p.resolved.name
        if not data.stream:
            answer = await service.complete(p)
            return Response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer.text},
                            "finish_reason": answer.finish_reason,
                        }
                    ],
                    "usage": _usage(answer),
                    **_extensions(answer, p),
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            return _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            try:
                async for item in service.stream(p):
                    if isinstance(item, Delta):
                        yield chunk({"content": item.text})
                        continue
                    answer = item
                    yield _sse(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            **_extensions(answer, p),
                        }
                    )
                    yield chunk({}, answer.finish_reason, usage=_usage(answer))
            except ProviderFailedError as exc:
                err = {
                    "message": exc.detail,
                    "type": "api_error",
                    "param": None,
                    "code": "provider_error",
                }
                yield _sse({"error": err})
            except AppError as exc:
                err = {
                    "message": exc.detail,
                    "type": _error_type(exc.status_code),
                    "param": (exc.extra or {}).get("field"),
                    "code": (exc.extra or {}).get("code"),
                }
                yield _sse({"error": err})
            except Exception:
                log.exception("stream failed")
                yield _sse(
                    {
                        "error": {
                            "message": "the server failed while streaming",
                            "type": "api_error",
                            "param": None,
                            "code": "internal_error",
                        }
                    }
                )
            yield _sse("[DONE]")

        return Stream(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @get(
        "/models",
        guards=[requires("read")],
        responses={200: ResponseSpec(ModelList, description="The models", generate_examples=False)},
    )
    async def models(self, resources: NamedDependency[Resources]) -> dict[str, Any]:
        """The knowledge-base aliases (retrieval on), every provider model, and the
        embedding model."""
        created = 0
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": owner,
                "retrieval": retrieval,
            }
            for name, owner, retrieval in resources.llm.model_names()
        ]
        data.append(
            {
                "id": resources.embedder.embedder.model_id,
                "object": "model",
                "created": created,
                "owned_by": "myaiserv",
                "retrieval": False,
            }
        )
        return {"object": "list", "data": data}

    @post(
        "/embeddings",
        guards=[requires("read")],
        status_code=200,
        responses={
            200: ResponseSpec(
                EmbeddingList, description="One vector per input", generate_examples=False
            )
        },
    )
    async def embeddings(
        self, data: EmbeddingsRequest, resources: NamedDependency[Resources]
    ) -> dict[str, Any]:
        """OpenAI-compatible embeddings from the same local model used for indexing
        (float or base64 encoding; a string or a list of strings)."""
        model_id = resources.embedder.embedder.model_id
        if data.model not in (None, model_id):
            from myaiserv.rag.service import ModelNotFoundError

            raise ModelNotFoundError(data.model, [model_id])
        inputs = [data.input] if isinstance(data.input, str) else data.input
        if not inputs:
            raise InvalidInputError("input", "give at least one text")
        if len(inputs) > MAX_EMBEDDING_INPUTS:
            raise InvalidInputError("input", f"at most {MAX_EMBEDDING_INPUTS} texts per request")
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise NotSupportedError(
                    f"input[{i}]", "only strings are supported (not token arrays)"
                )
            if not text or "\x00" in text:
                raise InvalidInputError(f"input[{i}]", "must be non-empty text without NUL")
        if data.dimensions not in (None, resources.embedder.embedder.info.dims):
            raise NotSupportedError(
                "dimensions", f"this model has {resources.embedder.embedder.info.dims}"
            )
        vectors = await resources.embedder.encode(inputs)
        tokens = sum(resources.embedder.embedder.count_tokens(inputs))
        items = []
        for i, vector in enumerate(vectors):
            value: Any = (
                base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
                if data.encoding_format == "base64"
                else [float(x) for x in vector]
            )
            items.append({"object": "embedding", "index": i, "embedding": value})
        return {
            "object": "list",
            "data": items,
            "model": model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


class RagController(Controller):
    path = "/v1/rag"
    tags = ["rag"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_rag_service)}  # noqa: RUF012

    @post(
        "/answer",
        guards=[requires("write")],
        status_code=200,
        responses={
            200: ResponseSpec(
                RagAnswer, description="The answer and its trace", generate_examples=False
            )
        },
    )
    async def answer(
        self, data: RagAnswerRequest, service: NamedDependency[RagService]
    ) -> dict[str, Any]:
        """One question: the answer, its citations, the passages given to the model, the
        retrieval trace (each hit's rank and score in the bm25 and vector lists and the
        fused score) and the prompt version used."""
        from myaiserv.rag.schemas import ChatMessageIn

        if data.max_tokens is not None and data.max_tokens < 1:
            raise InvalidInputError("max_tokens", "must be at least 1")
        p = await service.prepare(
            model=data.model,
            messages=[ChatMessageIn(role="user", content=data.question)],
            params=GenerationParams(temperature=data.temperature, max_tokens=data.max_tokens),
            retrieval=data.retrieval,
            prompt=data.prompt,
            conversation_id=data.conversation_id,
        )
        answer = await service.complete(p)
        return {
            "answer": answer.text,
            "model": p.resolved.name,
            "finish_reason": answer.finish_reason,
            "usage": _usage(answer),
            "passages": [x.__dict__ for x in p.passages],
            "retrieval": p.trace,
            "prompt": p.prompt_ref,
            **_extensions(answer, p),
        }
