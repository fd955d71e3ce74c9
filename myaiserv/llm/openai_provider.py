"""Any OpenAI-compatible chat endpoint (OpenAI, Groq, Together, vLLM, Ollama, llama.cpp
server) as a ``Provider``, through the official ``openai`` client.

The client's own retries are off (``max_retries=0``): we retry here, so that retries,
backoff, the circuit breaker and the mapping to ``ProviderError`` live in one place.

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

A 404 is failover-worthy: another provider may well serve the model. A 400/413/422
(context too long, a parameter out of range) would most likely be refused by the next
target too, so we neither retry nor fail over. Errors that are the request's fault count
as a *success* for the breaker: the provider answered. ``retryable`` on a raised error
says what kind of failure it was; the retries it allows have already been spent here, so
callers should fail over rather than call again.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, cast

import httpx
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from myaiserv.config import ProviderSettings
from myaiserv.llm.base import (
    ChatMessage,
    Completion,
    Delta,
    GenerationParams,
    Passage,
    ProviderError,
    Usage,
)
from myaiserv.llm.breaker import BreakerState, CircuitBreaker
from myaiserv.logging import get_logger, register_secret
from myaiserv.secrets.box import SecretsError

log = get_logger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers (vLLM, Ollama, llama.cpp) need no key, but the client insists on one.
NO_KEY = "no-key"


class _MalformedError(Exception):
    """The upstream answered 2xx with something that is not a chat completion."""


class OpenAIProvider:
    """One configured OpenAI-compatible provider. Build it once per process (lifespan) and
    ``aclose()`` it on shutdown; it holds a connection pool and the circuit breaker.

    ``sleep``, ``clock`` and ``rng`` are injectable so tests can skip backoff waits, move
    the breaker's time and fix the jitter.
    """

    backoff_base_s = 0.25
    backoff_max_s = 4.0
    # A Retry-After longer than this is not waited for: failing over is faster.
    max_retry_after_s = 5.0

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        key_source: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        """``key_source``: where the API key comes from on each call (a stored, encrypted
        secret; see ``myaiserv.secrets``) instead of ``settings.api_key``."""
        self.name = settings.name
        self.settings = settings
        self.breaker = CircuitBreaker(
            settings.breaker_failures, settings.breaker_reset_s, clock=clock
        )
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._owns_http_client = http_client is None
        self._key_source = key_source
        self._key = settings.api_key.get_secret_value() if settings.api_key else None
        register_secret(self._key)
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url or DEFAULT_BASE_URL,
            api_key=self._key or NO_KEY,
            timeout=settings.timeout_s,
            max_retries=0,
            # openai >= 3 is built on httpx2 but still accepts an httpx.AsyncClient.
            http_client=http_client,  # type: ignore[arg-type]
        )
        self._keyed_client = self._client

    async def _client_for_call(self) -> openai.AsyncOpenAI:
        """The client with the current API key (a stored key may have been changed; the
        copy shares the connection pool)."""
        if self._key_source is None:
            return self._client
        try:
            key = await self._key_source()
        except SecretsError as exc:
            raise ProviderError(
                self.name,
                f"the provider's API key is unavailable: {exc}",
                status=503,
                retryable=False,
                failover=True,
            ) from None
        if key != self._key:
            register_secret(key)
            self._key = key
            self._keyed_client = self._client.with_options(api_key=key)
        return self._keyed_client

    def redact(self, text: str) -> str:
        """``text`` without the API key (an upstream may echo it in an error)."""
        if self._key and len(self._key) >= 6:
            return text.replace(self._key, "[REDACTED]")
        return text

    async def aclose(self) -> None:
        """Close the connection pool, unless it was handed to us (its owner closes it)."""
        if self._owns_http_client:
            await self._client.close()

    async def complete(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> Completion:
        """One answer. ``passages`` are ignored: the context is already in ``messages``.
        Usage the upstream does not report stays zero (``total_tokens == 0``); the caller
        estimates it."""
        attempts = self._admit()
        client = await self._client_for_call()
        request = self._request(model, messages, params)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await client.chat.completions.create(**request)
                completion = _completion(response)
            except (openai.OpenAIError, ValueError, _MalformedError) as exc:
                error, counts = self._classify(exc)
                if error.retryable and attempt < attempts and await self._backoff(attempt, error):
                    continue
                self._record(counts)
                raise error from exc
            self.breaker.record_success()
            return completion

    async def stream(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> AsyncIterator[Delta]:
        """Deltas of text, then one last delta with ``finish_reason`` and, when the upstream
        reports it, ``usage`` (else None: the caller estimates).

        Retries (and the caller's failover) are only possible before the first delta was
        yielded: once text has reached our client, another attempt would repeat or
        contradict it. A stream that breaks after that, or ends without a finish reason,
        raises ``ProviderError`` 502 with ``failover=False``; before that, with
        ``failover=True``. ``passages`` are ignored, as in ``complete``.
        """
        attempts = self._admit()
        client = await self._client_for_call()
        request = {
            **self._request(model, messages, params),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        yielded = False
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                chunks = await client.chat.completions.create(**request)
                started = True
                async with aclosing(_deltas(chunks)) as deltas:
                    async for delta in deltas:
                        yielded = True
                        yield delta
            except GeneratorExit:
                # The consumer stopped reading (client gone): no failure, and text having
                # arrived shows the provider is healthy (this may have been the trial).
                if yielded:
                    self.breaker.record_success()
                raise
            except (openai.OpenAIError, ValueError, _MalformedError) as exc:
                error, counts = self._classify(exc, midstream=started)
                if yielded:
                    error.retryable = error.failover = False
                elif error.retryable and attempt < attempts and await self._backoff(attempt, error):
                    continue
                self._record(counts)
                raise error from exc
            self.breaker.record_success()
            return

    def _admit(self) -> int:
        """How many attempts this call may make; raises when the circuit is open. A
        half-open trial gets one attempt: a recovering provider is not hammered."""
        if not self.breaker.allow():
            raise ProviderError(
                self.name,
                "circuit open: too many recent failures",
                status=503,
                retryable=False,
                failover=True,
                retry_after_s=self.breaker.retry_after_s or None,
            )
        if self.breaker.state is BreakerState.HALF_OPEN:
            return 1
        return self.settings.max_retries + 1

    def _record(self, counts: bool) -> None:
        if counts:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()

    async def _backoff(self, attempt: int, error: ProviderError) -> bool:
        """Wait before attempt ``attempt + 1``; False when it is not worth waiting (a
        Retry-After longer than ``max_retry_after_s``)."""
        if error.retry_after_s is not None:
            if error.retry_after_s > self.max_retry_after_s:
                return False
            delay = error.retry_after_s
        else:
            # Exponential, with "equal jitter": between half and all of the step.
            step = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
            delay = step / 2 + self._rng.random() * step / 2
        log.warning(
            "llm provider retry",
            provider=self.name,
            attempt=attempt,
            status=error.status,
            upstream_status=error.upstream_status,
            delay_s=round(delay, 3),
        )
        await self._sleep(delay)
        return True

    def _request(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
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

    def _classify(self, exc: Exception, *, midstream: bool = False) -> tuple[ProviderError, bool]:
        """The ``ProviderError`` for a failed attempt, and whether it counts against the
        provider's health (see the module's table). ``midstream``: the stream had begun."""

        def error(message: str, status: int, retryable: bool, failover: bool) -> ProviderError:
            return ProviderError(
                self.name,
                self.redact(message),
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
            detail = f"upstream {code}: {_message(exc)}"
            if code == 429:
                failed, counts = error(detail, 429, True, True), True
                failed.retry_after_s = _retry_after(exc.response)
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


def _completion(response: object) -> Completion:
    if not isinstance(response, ChatCompletion):
        raise _MalformedError(f"expected a chat completion, got {type(response).__name__}")
    try:
        choice = response.choices[0]
        text = choice.message.content or ""
        # Servers that stray from the spec send null.
        finish_reason = cast(str | None, choice.finish_reason) or "stop"
        usage = _usage(response.usage)
    except (AttributeError, IndexError, TypeError) as exc:
        raise _MalformedError(str(exc) or type(exc).__name__) from exc
    return Completion(text=text, usage=usage or Usage(), finish_reason=finish_reason)


async def _deltas(chunks: openai.AsyncStream[ChatCompletionChunk]) -> AsyncGenerator[Delta]:
    """Text deltas, then the closing one. With ``include_usage`` the usage comes in its own
    chunk after the one carrying the finish reason, so the closing delta waits for the end.
    """
    finish_reason: str | None = None
    usage: Usage | None = None
    try:
        async for chunk in chunks:
            text, reason, chunk_usage = _chunk(chunk)
            if text:
                yield Delta(text=text)
            finish_reason = reason or finish_reason
            usage = chunk_usage or usage
    finally:
        await chunks.close()  # releases the connection, also when the consumer stops early
    if finish_reason is None:
        raise _MalformedError("the stream ended without a finish reason")
    yield Delta(finish_reason=finish_reason, usage=usage)


def _chunk(chunk: object) -> tuple[str, str | None, Usage | None]:
    """(text, finish_reason, usage) of one streamed chunk; the usage chunk has no choices."""
    if not isinstance(chunk, ChatCompletionChunk):
        raise _MalformedError(f"expected a chat completion chunk, got {type(chunk).__name__}")
    try:
        usage = _usage(chunk.usage)
        if not chunk.choices:
            return "", None, usage
        choice = chunk.choices[0]
        return choice.delta.content or "", choice.finish_reason, usage
    except (AttributeError, TypeError) as exc:
        raise _MalformedError(str(exc) or type(exc).__name__) from exc


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    return Usage(
        prompt_tokens=int(usage.prompt_tokens or 0),
        completion_tokens=int(usage.completion_tokens or 0),
    )


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        if isinstance(body.get("message"), str):
            return str(body["message"])[:300]
    return exc.message[:300]


def _retry_after(response: httpx.Response | Any) -> float | None:
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
