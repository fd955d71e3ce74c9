"""Any OpenAI-compatible chat endpoint (OpenAI, Groq, Together, vLLM, Ollama, llama.cpp
server) as a ``Provider``, through the official ``openai`` client.

The client's own retries are off (``max_retries=0``): we retry here, so that retries,
backoff and the circuit breaker live in one place. The request body, the reading of the
client's answers and the mapping of its failures to ``ProviderError``s (the table of
statuses) are in ``myaiserv.llm.openai_wire``. ``retryable`` on a raised error says what
kind of failure it was; the retries it allows have already been spent here, so callers
should fail over rather than call again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

import httpx
import openai

from myaiserv.config import ProviderSettings
from myaiserv.kit.breaker import BreakerState, CircuitBreaker
from myaiserv.llm.base import (
    ChatMessage,
    Completion,
    Delta,
    GenerationParams,
    Passage,
    ProviderError,
)
from myaiserv.llm.openai_wire import FAILURES, chat_request, classify, to_completion, to_deltas
from myaiserv.logging import get_logger, register_secret
from myaiserv.secrets.box import SecretsError
from myaiserv.tracing import genai

log = get_logger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers (vLLM, Ollama, llama.cpp) need no key, but the client insists on one.
NO_KEY = "no-key"


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
        request = chat_request(model, messages, params)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await client.chat.completions.create(
                    **request, extra_headers=genai.propagation_headers()
                )
                completion = to_completion(response)
            except FAILURES as exc:
                error, counts = classify(exc, self.name, self.redact)
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
            **chat_request(model, messages, params),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        yielded = False
        attempt = 0
        while True:
            attempt += 1
            started = False
            try:
                chunks = await client.chat.completions.create(
                    **request, extra_headers=genai.propagation_headers()
                )
                started = True
                async with aclosing(to_deltas(chunks)) as deltas:
                    async for delta in deltas:
                        yielded = True
                        yield delta
            except GeneratorExit:
                # The consumer stopped reading (client gone): no failure, and text having
                # arrived shows the provider is healthy (this may have been the trial).
                if yielded:
                    self.breaker.record_success()
                raise
            except FAILURES as exc:
                error, counts = classify(exc, self.name, self.redact, midstream=started)
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
        genai.retried(attempt, error.status, delay)
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
