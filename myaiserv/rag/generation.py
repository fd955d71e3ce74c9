"""Calling the providers: one failover loop for streamed and non-streamed calls.

Each of the model's targets is tried in order. A failed target hands over to the next
only while nothing of its answer has reached the client and its error allows failover
(a request the provider refused as malformed would fail everywhere). A non-streamed call
is a stream of one delta (the whole completion), so both kinds of call go through the
same loop; the provider still gets a non-streaming request. Each target tried is a span
(``myaiserv.tracing.genai``); a failed one is marked as an error.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from myaiserv.llm.base import ChatMessage, Delta, GenerationParams, Passage, ProviderError, Usage
from myaiserv.llm.registry import Target
from myaiserv.logging import get_logger
from myaiserv.tracing import genai
from myaiserv.tracing.spans import fail

log = get_logger(__name__)


@dataclass(frozen=True)
class Generated:
    """A target's whole answer, as the provider reported it (usage may be zeros)."""

    target: Target
    text: str
    finish_reason: str
    usage: Usage
    ttft_ms: float | None
    attempts: tuple[str, ...]


class GenerationFailedError(Exception):
    """Every target that was tried failed; ``partial``: text already sent to the client."""

    def __init__(self, error: ProviderError, attempts: Sequence[str], partial: str = "") -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = tuple(attempts)
        self.partial = partial


async def _deltas(
    target: Target,
    messages: list[ChatMessage],
    params: GenerationParams,
    passages: list[Passage],
    stream: bool,
) -> AsyncIterator[Delta]:
    if stream:
        async for delta in target.provider.stream(target.model, messages, params, passages):
            yield delta
        return
    completion = await target.provider.complete(target.model, messages, params, passages)
    yield Delta(completion.text, completion.finish_reason, completion.usage)


async def generate(
    targets: Sequence[Target],
    messages: list[ChatMessage],
    params: GenerationParams,
    passages: list[Passage],
    *,
    stream: bool,
    started: float,
) -> AsyncIterator[Delta | Generated]:
    """Text deltas as they come, then the ``Generated`` answer; raises
    ``GenerationFailedError`` when no target could answer. ``started``: the call's
    ``perf_counter`` start, for the time to first token."""
    attempts: list[str] = []
    last: ProviderError | None = None
    for target in targets:
        attempts.append(target.label)
        parts: list[str] = []
        finish: str | None = None
        usage: Usage | None = None
        ttft: float | None = None
        span = genai.chat_span(
            target.settings.name,
            target.settings.kind,
            target.model,
            stream=stream,
            position=len(attempts),
        )
        try:
            deltas = _deltas(target, messages, params, passages, stream)
            async for delta in genai.within(span, deltas):
                # A completion arrives whole: its first token came with it, text or not.
                if ttft is None and (delta.text or not stream):
                    ttft = (time.perf_counter() - started) * 1000
                if delta.text:
                    parts.append(delta.text)
                    yield delta
                if delta.finish_reason:
                    finish = delta.finish_reason
                if delta.usage:
                    usage = delta.usage
        except ProviderError as exc:
            fail(span, exc)
            last = exc
            log.warning("provider failed", target=target.label, error=str(exc))
            if parts or not exc.failover:
                raise GenerationFailedError(exc, attempts, "".join(parts)) from exc
            continue
        else:
            genai.finish(span, usage=usage, finish_reason=finish or "stop", ttft_ms=ttft)
        finally:
            span.end()
        yield Generated(
            target, "".join(parts), finish or "stop", usage or Usage(), ttft, tuple(attempts)
        )
        return
    if last is None:  # a resolved model always has a target
        raise RuntimeError("no target to generate with")
    raise GenerationFailedError(last, attempts)
