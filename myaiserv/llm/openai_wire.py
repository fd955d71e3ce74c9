"""Between our types and the ``openai`` client's: the request body from our parameters,
completions and stream deltas from its responses, ``ProviderError``s from its failures.
``OpenAIProvider`` makes the calls, retries and keeps the breaker; nothing here decides
whether to call again.

How failures map (``status`` is what our client sees; ``failover``: the RAG service may try
the alias's next target; "breaker": counts as a failure of the provider's health):

=============================================  ======  =========  ========  =======
upstream                                       status  retryable  failover  breaker
=============================================  ======  =========  ========  =======
429                                            429     yes        yes       yes
408, timeout                                   504     yes        yes       yes
409, 5xx, connection error                     503     yes        yes       yes
401, 403 (our key or account)                  503     no         yes       yes
circuit open (upstream not called)             503     no         yes       no
2xx that is not a chat completion              502     no         yes       yes
stream broken (or no finish reason), no text   502     yes        yes       yes
stream broken after text was yielded           502     no         no        yes
400, 413, 422 (the request's fault)            502     no         no        no
404 (unknown model here), other 4xx            502     no         yes       no
=============================================  ======  =========  ========  =======

Two rows are the provider's doing: an open circuit (its breaker refuses the call) and a
stream that breaks after text was yielded (it clears ``retryable`` and ``failover``).
A 404 is failover-worthy: another provider may well serve the model. A 400/413/422
(context too long, a parameter out of range) would most likely be refused by the next
target too, so we neither retry nor fail over. Errors that are the request's fault count
as a *success* for the breaker: the provider answered.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import httpx
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from myaiserv.llm.base import ChatMessage, Completion, Delta, GenerationParams, ProviderError, Usage


class MalformedError(Exception):
    """The upstream answered 2xx with something that is not a chat completion."""


# The exceptions of one attempt that ``classify`` maps to a ``ProviderError``.
FAILURES = (openai.OpenAIError, ValueError, MalformedError)


def chat_request(
    model: str, messages: list[ChatMessage], params: GenerationParams
) -> dict[str, Any]:
    """The request body. ``max_tokens`` (not ``max_completion_tokens``): it is what
    every OpenAI-compatible server understands. Unset parameters are omitted, so the
    upstream's defaults apply."""
    request: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
    }
    for key in ("temperature", "top_p", "max_tokens", "stop", "seed"):
        value = getattr(params, key)
        if value is not None:
            request[key] = value
    return request


def classify(
    exc: Exception, provider: str, redact: Callable[[str], str], *, midstream: bool = False
) -> tuple[ProviderError, bool]:
    """The ``ProviderError`` of ``provider`` for a failed attempt, and whether it counts
    against the provider's health (see the module's table). ``redact`` takes the API key
    out of the message; ``midstream``: the stream had begun."""

    def error(message: str, status: int, retryable: bool, failover: bool) -> ProviderError:
        return ProviderError(
            provider,
            redact(message),
            status=status,
            retryable=retryable,
            failover=failover,
        )

    if midstream:
        # Dropped connection, read timeout, SSE error event, or no finish reason: the
        # next attempt may well get through (the caller clears that once text is out).
        return error(f"upstream stream broken: {exc}", 502, True, True), True
    if isinstance(exc, openai.APITimeoutError):
        return error("upstream timed out", 504, True, True), True
    if isinstance(exc, openai.APIConnectionError):
        return error(f"upstream unreachable: {exc}", 503, True, True), True
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        detail = f"upstream {code}: {error_message(exc)}"
        if code == 429:
            failed, counts = error(detail, 429, True, True), True
            failed.retry_after_s = retry_after_s(exc.response)
        elif code == 408:
            failed, counts = error(detail, 504, True, True), True
        elif code == 409 or code >= 500:
            failed, counts = error(detail, 503, True, True), True
        elif code in (401, 403):
            failed, counts = error(detail, 503, False, True), True
        elif code in (400, 413, 422):
            failed, counts = error(detail, 502, False, False), False
        else:
            failed, counts = error(detail, 502, False, True), False
        failed.upstream_status = code
        return failed, counts
    # A 2xx body that is not a chat completion: another attempt is unlikely to differ.
    return error(f"malformed upstream answer: {exc}", 502, False, True), True


def to_completion(response: object) -> Completion:
    """Our ``Completion`` of a whole answer; ``MalformedError`` when it is not one."""
    if not isinstance(response, ChatCompletion):
        raise MalformedError(f"expected a chat completion, got {type(response).__name__}")
    try:
        choice = response.choices[0]
        text = choice.message.content or ""
        # Servers that stray from the spec send null.
        finish_reason = cast(str | None, choice.finish_reason) or "stop"
        usage = to_usage(response.usage)
    except (AttributeError, IndexError, TypeError) as exc:
        raise MalformedError(str(exc) or type(exc).__name__) from exc
    return Completion(text=text, usage=usage or Usage(), finish_reason=finish_reason)


async def to_deltas(chunks: openai.AsyncStream[ChatCompletionChunk]) -> AsyncGenerator[Delta]:
    """Text deltas, then the closing one. With ``include_usage`` the usage comes in its own
    chunk after the one carrying the finish reason, so the closing delta waits for the end.
    """
    finish_reason: str | None = None
    usage: Usage | None = None
    try:
        async for chunk in chunks:
            text, reason, chunk_usage = chunk_parts(chunk)
            if text:
                yield Delta(text=text)
            finish_reason = reason or finish_reason
            usage = chunk_usage or usage
    finally:
        await chunks.close()  # releases the connection, also when the consumer stops early
    if finish_reason is None:
        raise MalformedError("the stream ended without a finish reason")
    yield Delta(finish_reason=finish_reason, usage=usage)


def chunk_parts(chunk: object) -> tuple[str, str | None, Usage | None]:
    """(text, finish_reason, usage) of one streamed chunk; the usage chunk has no choices."""
    if not isinstance(chunk, ChatCompletionChunk):
        raise MalformedError(f"expected a chat completion chunk, got {type(chunk).__name__}")
    try:
        usage = to_usage(chunk.usage)
        if not chunk.choices:
            return "", None, usage
        choice = chunk.choices[0]
        return choice.delta.content or "", choice.finish_reason, usage
    except (AttributeError, TypeError) as exc:
        raise MalformedError(str(exc) or type(exc).__name__) from exc


def to_usage(usage: Any) -> Usage | None:
    """Our ``Usage`` of the client's; None when the upstream reported none."""
    if usage is None:
        return None
    return Usage(
        prompt_tokens=int(usage.prompt_tokens or 0),
        completion_tokens=int(usage.completion_tokens or 0),
    )


def error_message(exc: openai.APIStatusError) -> str:
    """The upstream's own words (OpenAI's error envelope, or a bare ``message``), cut short."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:300]
    return exc.message[:300]


def retry_after_s(response: httpx.Response | Any) -> float | None:
    """Seconds from ``retry-after-ms`` (OpenAI's) or ``Retry-After`` (seconds or an HTTP
    date); None when absent or unreadable."""
    headers = response.headers
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            value = float(milliseconds) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    header = headers.get("retry-after")
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        value = when.timestamp() - time.time()
    return max(0.0, value) if math.isfinite(value) else None
