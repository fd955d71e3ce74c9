"""The span of one LLM call (one target of a model's failover list), named and attributed
by OpenTelemetry's GenAI semantic conventions (``gen_ai.*``), plus ours (``myaiserv.*``:
the configured provider, retries, time to first token, failover position).

A streamed call yields between its deltas. Its span is made current only while the
provider works (each step of the stream), never across a ``yield``: the consumer's code
between deltas is not the provider's, and a context set in a generator must be reset in
the same step it was set in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

if TYPE_CHECKING:
    from myaiserv.llm.base import Usage

T = TypeVar("T")
tracer = trace.get_tracer("myaiserv.llm")

# gen_ai.provider.name: the well-known value where there is one.
PROVIDER_NAMES = {"openai": "openai", "extractive": "myaiserv.extractive"}


def chat_span(provider: str, kind: str, model: str, *, stream: bool, position: int) -> Span:
    """A started, not current, span for a chat call to ``model`` of the configured
    ``provider`` (of ``kind``; ``position``: 1 for the model's first target, 2 for the
    first failover, ...)."""
    return tracer.start_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER_NAMES.get(kind, kind),
            "gen_ai.request.model": model,
            "myaiserv.llm.provider": provider,
            "myaiserv.llm.stream": stream,
            "myaiserv.llm.failover_position": position,
        },
    )


def finish(span: Span, *, usage: Usage | None, finish_reason: str, ttft_ms: float | None) -> None:
    """What the call answered."""
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
    if usage is not None and usage.total_tokens:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if ttft_ms is not None:
        span.set_attribute("myaiserv.llm.time_to_first_token_ms", round(ttft_ms, 3))


def retried(attempt: int, status: int, delay_s: float) -> None:
    """A provider retries a failed attempt (the current span is the call's)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("myaiserv.llm.retries", attempt)
        span.add_event(
            "retry", {"attempt": attempt, "status": status, "delay_s": round(delay_s, 3)}
        )


def propagation_headers() -> dict[str, str]:
    """W3C trace context (``traceparent``) of the current span, for the request to an
    OpenAI-compatible server: a traced upstream continues our trace. Empty when off."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


async def within(span: Span, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """``items``, each step run with ``span`` current."""
    try:
        while True:
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    return
            yield item
    finally:
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()
