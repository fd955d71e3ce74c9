"""The failover loop, with providers that answer or fail as each test says (the real
OpenAI-wire provider is tested against a local server in tests/integration)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from myaiserv.llm.base import (
    ChatMessage,
    Completion,
    Delta,
    GenerationParams,
    Passage,
    ProviderError,
    Usage,
)
from myaiserv.rag.generation import Generated, GenerationFailedError, generate
from tests.unit.rag.support import target

MESSAGES = [ChatMessage("user", "q")]


class Scripted:
    """Streams ``pieces``, then raises ``error`` if given (a completion raises it first)."""

    def __init__(self, pieces: list[str], error: ProviderError | None = None) -> None:
        self.name = "scripted"
        self.pieces = pieces
        self.error = error
        self.calls: list[str] = []

    async def complete(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> Completion:
        self.calls.append("complete")
        if self.error is not None:
            raise self.error
        return Completion("".join(self.pieces), Usage(3, len(self.pieces)), "length")

    async def stream(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> AsyncIterator[Delta]:
        self.calls.append("stream")
        for piece in self.pieces:
            yield Delta(piece)
        if self.error is not None:
            raise self.error
        yield Delta(finish_reason="stop", usage=Usage(3, len(self.pieces)))


async def run(*providers: Scripted, stream: bool) -> list[Delta | Generated]:
    targets = [target(p, name=f"p{i}") for i, p in enumerate(providers)]
    items = generate(
        targets, MESSAGES, GenerationParams(), [], stream=stream, started=time.perf_counter()
    )
    return [item async for item in items]


def down(failover: bool = True) -> ProviderError:
    return ProviderError("p", "unavailable", status=503, failover=failover)


@pytest.mark.parametrize("stream", [True, False])
async def test_the_first_target_that_answers_answers(stream: bool) -> None:
    first, second = Scripted([], down()), Scripted(["Hello ", "world"])
    items = await run(first, second, stream=stream)
    generated = items[-1]
    assert isinstance(generated, Generated)
    assert generated.text == "Hello world"
    assert generated.attempts == ("p0/m", "p1/m")
    assert generated.target.label == "p1/m"
    assert generated.ttft_ms is not None
    assert first.calls == second.calls == (["stream"] if stream else ["complete"])
    deltas = [i.text for i in items if isinstance(i, Delta)]
    assert deltas == (["Hello ", "world"] if stream else ["Hello world"])
    assert generated.finish_reason == ("stop" if stream else "length")
    assert generated.usage == Usage(3, 2)


@pytest.mark.parametrize("stream", [True, False])
async def test_an_error_that_forbids_failover_stops_at_once(stream: bool) -> None:
    first, second = Scripted([], down(failover=False)), Scripted(["never"])
    with pytest.raises(GenerationFailedError) as raised:
        await run(first, second, stream=stream)
    assert raised.value.attempts == ("p0/m",)
    assert raised.value.partial == ""
    assert second.calls == []


async def test_no_failover_once_text_reached_the_client() -> None:
    first, second = Scripted(["partial "], down()), Scripted(["never"])
    with pytest.raises(GenerationFailedError) as raised:
        await run(first, second, stream=True)
    assert raised.value.partial == "partial "
    assert raised.value.error.status == 503
    assert second.calls == []


async def test_every_target_failing_raises_the_last_error() -> None:
    last = ProviderError("p1", "timed out", status=504)
    with pytest.raises(GenerationFailedError) as raised:
        await run(Scripted([], down()), Scripted([], last), stream=False)
    assert raised.value.error is last
    assert raised.value.attempts == ("p0/m", "p1/m")


async def test_an_empty_stream_is_an_empty_answer_without_first_token() -> None:
    (generated,) = await run(Scripted([]), stream=True)
    assert isinstance(generated, Generated)
    assert (generated.text, generated.ttft_ms, generated.finish_reason) == ("", None, "stop")
