"""The OpenAI client's types read as ours, without a server: the request body, answers
and chunks, Retry-After, and the table mapping each failure to a ``ProviderError``."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from myaiserv.llm.base import ChatMessage, GenerationParams, ProviderError, Usage
from myaiserv.llm.openai_wire import (
    MalformedError,
    chat_request,
    chunk_parts,
    classify,
    error_message,
    retry_after_s,
    to_completion,
)

REQUEST = httpx.Request("POST", "http://upstream.test/v1/chat/completions")


def status_error(code: int, body: object = None, **headers: str) -> openai.APIStatusError:
    response = httpx.Response(code, headers=headers, request=REQUEST)
    return openai.APIStatusError(f"Error code: {code}", response=response, body=body)


def classified(exc: Exception, *, midstream: bool = False) -> tuple[ProviderError, bool]:
    def redact(text: str) -> str:
        return text.replace("sk-secret", "[REDACTED]")

    return classify(exc, "up", redact, midstream=midstream)


def answer(finish_reason: str | None, usage: dict[str, int] | None = None) -> ChatCompletion:
    completion = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "length",
                }
            ],
            "usage": usage and {**usage, "total_tokens": sum(usage.values())},
        }
    )
    # Servers that stray from the spec send a null finish reason, which the model refuses.
    choice = completion.choices[0].model_copy(update={"finish_reason": finish_reason})
    return completion.model_copy(update={"choices": [choice]})


def test_the_request_omits_unset_parameters() -> None:
    body = chat_request(
        "m", [ChatMessage("user", "hi")], GenerationParams(temperature=0.0, stop=["\n"])
    )
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
        "stop": ["\n"],
    }


def test_an_answer_keeps_its_finish_reason_and_usage() -> None:
    completion = to_completion(answer("length", {"prompt_tokens": 3, "completion_tokens": 2}))
    assert (completion.text, completion.finish_reason) == ("hi", "length")
    assert completion.usage == Usage(prompt_tokens=3, completion_tokens=2)


def test_an_answer_without_finish_reason_or_usage_stopped_and_reports_zero() -> None:
    completion = to_completion(answer(None))
    assert completion.finish_reason == "stop"
    assert completion.usage.total_tokens == 0


def test_what_is_not_a_chat_completion_is_malformed() -> None:
    with pytest.raises(MalformedError, match="expected a chat completion, got str"):
        to_completion("<html>gateway</html>")
    with pytest.raises(MalformedError, match="list index out of range"):
        to_completion(answer("stop").model_copy(update={"choices": []}))


def test_the_usage_chunk_has_no_choices() -> None:
    chunk = ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
        }
    )
    assert chunk_parts(chunk) == ("", None, Usage(prompt_tokens=4, completion_tokens=1))
    with pytest.raises(MalformedError, match="expected a chat completion chunk"):
        chunk_parts({"choices": []})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "-1", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "soon", "retry-after": "2.5"}, 2.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_retry_after_in_milliseconds_or_seconds(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_s(httpx.Response(429, headers=headers)) == expected


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= (retry_after_s(httpx.Response(429, headers={"retry-after": later})) or 0) <= 60
    earlier = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert retry_after_s(httpx.Response(429, headers={"retry-after": earlier})) == 0.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": {"message": "model not found"}}, "model not found"),
        ({"message": "bare"}, "bare"),
        ({"error": "not an object"}, "Error code: 404"),
        (None, "Error code: 404"),
        ({"error": {"message": "x" * 400}}, "x" * 300),
    ],
)
def test_the_upstreams_own_words(body: object, message: str) -> None:
    assert error_message(status_error(404, body)) == message


@pytest.mark.parametrize(
    ("code", "status", "retryable", "failover", "counts"),
    [
        (429, 429, True, True, True),
        (408, 504, True, True, True),
        (409, 503, True, True, True),
        (500, 503, True, True, True),
        (503, 503, True, True, True),
        (401, 503, False, True, True),
        (403, 503, False, True, True),
        (400, 502, False, False, False),
        (413, 502, False, False, False),
        (422, 502, False, False, False),
        (404, 502, False, True, False),
        (418, 502, False, True, False),
    ],
)
def test_upstream_statuses_map_as_the_table_says(
    code: int, status: int, retryable: bool, failover: bool, counts: bool
) -> None:
    error, counted = classified(status_error(code))
    assert (error.status, error.retryable, error.failover, counted) == (
        status,
        retryable,
        failover,
        counts,
    )
    assert error.upstream_status == code
    assert error.provider == "up"


def test_a_rate_limit_carries_its_retry_after_and_no_key() -> None:
    body: dict[str, Any] = {"error": {"message": "slow down, sk-secret"}}
    error, _ = classified(status_error(429, body, **{"retry-after": "2"}))
    assert error.retry_after_s == 2.0
    assert error.message == "upstream 429: slow down, [REDACTED]"


@pytest.mark.parametrize(
    ("exc", "midstream", "status", "retryable"),
    [
        (openai.APITimeoutError(request=REQUEST), False, 504, True),
        (openai.APIConnectionError(request=REQUEST), False, 503, True),
        (MalformedError("expected a chat completion"), False, 502, False),
        (openai.APIConnectionError(request=REQUEST), True, 502, True),
        (MalformedError("the stream ended without a finish reason"), True, 502, True),
    ],
)
def test_failures_without_a_status(
    exc: Exception, midstream: bool, status: int, retryable: bool
) -> None:
    error, counted = classified(exc, midstream=midstream)
    assert (error.status, error.retryable, error.failover, counted) == (
        status,
        retryable,
        True,
        True,
    )
    assert error.upstream_status is None
