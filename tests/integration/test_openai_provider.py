"""OpenAIProvider through the official client against a local server that speaks OpenAI's
wire protocol: answers, streams, what is sent, retries, error mapping, the breaker.
Backoff waits go through an injected sleep (recorded, not slept), the breaker's time
through an injected clock; no database is needed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from myaiserv.config import ProviderSettings
from myaiserv.kit.breaker import BreakerState
from myaiserv.llm.base import ChatMessage, Delta, GenerationParams, ProviderError, Usage
from myaiserv.llm.openai_provider import OpenAIProvider
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.integration

QUESTION = [
    ChatMessage("system", "Answer from the context."),
    ChatMessage("user", "what is RAG?"),
]
ANSWER = "Echo: what is RAG? [1]"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list[float]):
    """Records backoff delays instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


MakeProvider = Callable[..., OpenAIProvider]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_provider(
    server: FakeOpenAIServer, sleeps: Sleeps, clock: Clock
) -> AsyncIterator[MakeProvider]:
    made: list[OpenAIProvider] = []

    def make(**settings: Any) -> OpenAIProvider:
        values: dict[str, Any] = {
            "name": "fake",
            "base_url": server.url,
            "api_key": "sk-test",
            "models": ["echo"],
            "timeout_s": 5.0,
            "max_retries": 2,
            **settings,
        }
        provider = OpenAIProvider(ProviderSettings(**values), sleep=sleeps, clock=clock)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


async def collect(
    provider: OpenAIProvider, model: str, params: GenerationParams | None = None
) -> list[Delta]:
    return [
        delta async for delta in provider.stream(model, QUESTION, params or GenerationParams(), [])
    ]


async def complete_error(provider: OpenAIProvider, model: str) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(model, QUESTION, GenerationParams(), [])
    return caught.value


async def test_complete_returns_the_answer_and_usage(make_provider: MakeProvider) -> None:
    completion = await make_provider().complete("echo", QUESTION, GenerationParams(), [])
    assert completion.text == ANSWER
    assert completion.finish_reason == "stop"
    # The fake counts words: 4 + 3 in the prompt, 5 in the answer.
    assert completion.usage == Usage(prompt_tokens=7, completion_tokens=5)


async def test_stream_joins_to_the_same_answer_and_reports_usage(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider()
    completion = await provider.complete("echo", QUESTION, GenerationParams(), [])
    deltas = await collect(provider, "echo")
    assert len(deltas) > 2
    assert "".join(d.text for d in deltas) == completion.text
    *pieces, last = deltas
    assert all(d.finish_reason is None and d.usage is None for d in pieces)
    assert last.text == ""
    assert last.finish_reason == "stop"
    assert last.usage == completion.usage


async def test_the_request_carries_our_parameters(
    make_provider: MakeProvider, server: FakeOpenAIServer
) -> None:
    provider = make_provider()
    params = GenerationParams(temperature=0.2, top_p=0.9, max_tokens=3, stop=["\n\n"], seed=7)
    completion = await provider.complete("echo", QUESTION, params, [])
    sent = server.requests[-1]
    assert sent["model"] == "echo"
    assert sent["messages"] == [{"role": m.role, "content": m.content} for m in QUESTION]
    assert {k: sent[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed")} == {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 3,
        "stop": ["\n\n"],
        "seed": 7,
    }
    assert "stream" not in sent
    assert server.request_headers[-1]["authorization"] == "Bearer sk-test"
    assert completion.finish_reason == "length"  # max_tokens reached the upstream

    deltas = await collect(provider, "echo")  # unset parameters are left out
    sent = server.requests[-1]
    assert set(sent) == {"model", "messages", "stream", "stream_options"}
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert deltas[-1].finish_reason == "stop"


async def test_rate_limit_is_retried_after_retry_after_then_reported(
    make_provider: MakeProvider, server: FakeOpenAIServer, sleeps: Sleeps
) -> None:
    error = await complete_error(make_provider(max_retries=2), "rate-limited")
    assert (error.status, error.upstream_status, error.retry_after_s) == (429, 429, 1.0)
    assert error.retryable and error.failover
    assert server.models_requested("rate-limited") == 3
    assert sleeps == [1.0, 1.0]


async def test_retry_after_ms_is_preferred(
    make_provider: MakeProvider, server: FakeOpenAIServer, sleeps: Sleeps
) -> None:
    server.retry_after_ms = "250"
    error = await complete_error(make_provider(max_retries=1), "rate-limited")
    assert error.retry_after_s == 0.25
    assert sleeps == [0.25]


async def test_a_long_retry_after_is_not_waited_for(
    make_provider: MakeProvider, server: FakeOpenAIServer, sleeps: Sleeps
) -> None:
    server.retry_after = "120"
    error = await complete_error(make_provider(max_retries=2), "rate-limited")
    assert (error.status, error.retry_after_s) == (429, 120.0)
    assert server.models_requested("rate-limited") == 1
    assert sleeps == []


async def test_server_errors_are_retried_until_they_recover(
    make_provider: MakeProvider, server: FakeOpenAIServer, sleeps: Sleeps
) -> None:
    server.flaky_failures = 2
    completion = await make_provider(max_retries=2).complete(
        "flaky", QUESTION, GenerationParams(), []
    )
    assert completion.text == ANSWER
    assert server.models_requested("flaky") == 3
    assert len(sleeps) == 2 and all(s > 0 for s in sleeps)


async def test_persistent_server_errors_become_503(
    make_provider: MakeProvider, server: FakeOpenAIServer
) -> None:
    error = await complete_error(make_provider(max_retries=2), "server-error")
    assert (error.status, error.upstream_status) == (503, 500)
    assert error.retryable and error.failover
    assert server.models_requested("server-error") == 3


async def test_the_requests_own_faults_are_neither_retried_nor_failed_over(
    make_provider: MakeProvider, server: FakeOpenAIServer
) -> None:
    provider = make_provider(max_retries=2, breaker_failures=1)
    error = await complete_error(provider, "bad-request")
    assert (error.status, error.upstream_status) == (502, 400)
    assert not error.retryable and not error.failover
    assert "Invalid request" in error.message
    assert server.models_requested("bad-request") == 1
    assert provider.breaker.state is BreakerState.CLOSED  # the provider did answer


async def test_an_unknown_model_fails_over_without_retrying(
    make_provider: MakeProvider, server: FakeOpenAIServer
) -> None:
    error = await complete_error(make_provider(max_retries=2), "gpt-unknown")
    assert (error.status, error.upstream_status) == (502, 404)
    assert error.failover and not error.retryable
    assert server.models_requested("gpt-unknown") == 1


async def test_a_malformed_answer_is_502(make_provider: MakeProvider) -> None:
    error = await complete_error(make_provider(), "malformed")
    assert error.status == 502
    assert error.failover


async def test_a_timeout_is_504(make_provider: MakeProvider, server: FakeOpenAIServer) -> None:
    provider = make_provider(timeout_s=0.2, max_retries=1)
    error = await complete_error(provider, "slow")
    assert error.status == 504
    assert error.retryable and error.failover
    assert server.models_requested("slow") == 2
    with pytest.raises(ProviderError) as caught:
        await collect(provider, "slow")
    assert caught.value.status == 504


async def test_a_stream_is_retried_before_its_first_delta(
    make_provider: MakeProvider, server: FakeOpenAIServer
) -> None:
    server.flaky_failures = 1
    deltas = await collect(make_provider(max_retries=1), "flaky")
    assert "".join(d.text for d in deltas) == ANSWER
    assert server.models_requested("flaky") == 2


async def test_a_stream_that_cannot_start_fails_over(
    make_provider: MakeProvider, server: FakeOpenAIServer
) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(max_retries=1), "server-error")
    assert (caught.value.status, caught.value.upstream_status) == (503, 500)
    assert caught.value.failover
    assert server.models_requested("server-error") == 2


@pytest.mark.parametrize("model", ["broken-stream", "no-finish"])
async def test_a_stream_broken_after_text_is_502_without_failover(
    make_provider: MakeProvider, server: FakeOpenAIServer, model: str
) -> None:
    received: list[Delta] = []
    with pytest.raises(ProviderError) as caught:  # noqa: PT012 - fails while iterating
        async for delta in make_provider(max_retries=2).stream(
            model, QUESTION, GenerationParams(), []
        ):
            received.append(delta)
    assert caught.value.status == 502
    assert not caught.value.retryable and not caught.value.failover
    assert received and all(d.text and d.finish_reason is None for d in received)
    assert ANSWER.startswith("".join(d.text for d in received))
    assert server.models_requested(model) == 1  # text was out: no second attempt


async def test_a_stream_left_early_is_no_failure(make_provider: MakeProvider, clock: Clock) -> None:
    provider = make_provider(max_retries=0, breaker_failures=1, breaker_reset_s=30)
    await complete_error(provider, "server-error")
    assert provider.breaker.state is BreakerState.OPEN
    clock.now += 30
    # The half-open trial is a stream whose reader goes away after the first delta.
    stream = provider.stream("echo", QUESTION, GenerationParams(), [])
    async with aclosing(stream) as deltas:  # type: ignore[type-var]
        async for delta in deltas:
            assert delta.text
            break
    assert provider.breaker.state is BreakerState.CLOSED
    assert (await provider.complete("echo", QUESTION, GenerationParams(), [])).text == ANSWER


async def test_the_breaker_opens_short_circuits_and_half_opens(
    make_provider: MakeProvider, server: FakeOpenAIServer, clock: Clock
) -> None:
    provider = make_provider(max_retries=1, breaker_failures=2, breaker_reset_s=30)
    for _ in range(2):
        assert (await complete_error(provider, "server-error")).status == 503
    assert server.models_requested("server-error") == 4  # two calls, one retry each
    assert provider.breaker.state is BreakerState.OPEN

    seen = len(server.requests)
    error = await complete_error(provider, "echo")  # even a healthy model: not called
    assert (error.status, error.retryable, error.failover) == (503, False, True)
    assert error.retry_after_s == 30
    with pytest.raises(ProviderError):
        await collect(provider, "echo")
    assert len(server.requests) == seen

    clock.now += 30  # half-open: one trial, one attempt (no retries)
    assert (await complete_error(provider, "server-error")).status == 503
    assert len(server.requests) == seen + 1
    assert provider.breaker.state is BreakerState.OPEN
    await complete_error(provider, "echo")
    assert len(server.requests) == seen + 1

    clock.now += 30  # a successful trial closes the circuit
    assert (await provider.complete("echo", QUESTION, GenerationParams(), [])).text == ANSWER
    assert provider.breaker.state is BreakerState.CLOSED
    assert len(server.requests) == seen + 2


async def test_an_injected_http_client_is_used_and_left_open(server: FakeOpenAIServer) -> None:
    settings = ProviderSettings(name="fake", base_url=server.url, models=["echo"])
    async with httpx.AsyncClient(headers={"x-test": "injected"}) as http_client:
        provider = OpenAIProvider(settings, http_client=http_client)
        completion = await provider.complete("echo", QUESTION, GenerationParams(), [])
        await provider.aclose()
        assert completion.text == ANSWER
        assert server.request_headers[-1]["x-test"] == "injected"
        assert server.request_headers[-1]["authorization"] == "Bearer no-key"  # no key set
        assert not http_client.is_closed
