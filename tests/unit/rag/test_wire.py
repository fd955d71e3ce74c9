from __future__ import annotations

import json
from collections.abc import AsyncIterator
from uuid import uuid4

import msgspec
import pytest

from myaiserv.errors import DependencyUnavailableError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import Delta, ProviderError, Usage
from myaiserv.llm.registry import ResolvedModel
from myaiserv.rag import wire
from myaiserv.rag.errors import NotSupportedError, ProviderFailedError
from myaiserv.rag.result import Answer
from myaiserv.rag.schemas import ChatCompletionRequest
from tests.unit.rag.support import chat_request

ANSWER = Answer(
    text="Recall [1].",
    finish_reason="stop",
    usage=Usage(7, 3),
    target="local/extractive",
    citations=[
        {
            "index": 1,
            "chunk_id": "c1",
            "document_id": "d1",
            "title": None,
            "source": None,
            "score": 0.5,
            "text": "Recall is the share of relevant documents found.",
            "char_start": 0,
            "char_end": 48,
            "heading": None,
            "page_start": None,
            "page_end": None,
            "url": "/v1/documents/d1",
        }
    ],
    run_id=uuid4(),
)


def events(raw: list[bytes]) -> list[object]:
    out: list[object] = []
    for item in raw:
        text = item.decode()
        assert text.startswith("data: ") and text.endswith("\n\n")
        payload = text[len("data: ") : -2]
        out.append(payload if payload == wire.DONE else json.loads(payload))
    return out


def test_generation_params_refuse_what_we_cannot_honour() -> None:
    params = wire.generation_params(ChatCompletionRequest(max_completion_tokens=5, stop="x"))
    assert (params.max_tokens, params.stop) == (5, ["x"])
    for bad, field in [
        (ChatCompletionRequest(n=2), "n"),
        (ChatCompletionRequest(tools=[{}]), "tools"),
        (ChatCompletionRequest(response_format={"type": "json_object"}), "response_format"),
    ]:
        with pytest.raises(NotSupportedError, match=field):
            wire.generation_params(bad)
    with pytest.raises(InvalidInputError, match="temperature"):
        wire.generation_params(ChatCompletionRequest(temperature=3))


def test_a_completion_body_is_openai_s_with_our_extensions() -> None:
    request = chat_request(model=ResolvedModel("kb", [], retrieval=True))
    body = msgspec.to_builtins(wire.CompletionEnvelope(request).body(ANSWER))
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "kb"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Recall [1]."},
            "finish_reason": "stop",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert body["citations"] == ANSWER.citations
    assert body["run_id"] == str(ANSWER.run_id)
    assert body["provider_model"] == "local/extractive"
    assert body["conversation_id"] is None


async def test_a_stream_is_role_deltas_extensions_finish_then_done() -> None:
    async def items() -> AsyncIterator[Delta | Answer]:
        yield Delta("Recall ")
        yield Delta("[1].")
        yield ANSWER

    completion = wire.CompletionEnvelope(chat_request())
    got = events([chunk async for chunk in completion.events(items())])
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}  # type: ignore[index]
    assert [e["choices"][0]["delta"]["content"] for e in got[1:3]] == ["Recall ", "[1]."]  # type: ignore[index]
    assert got[3]["choices"] == [] and got[3]["citations"] == ANSWER.citations  # type: ignore[index]
    assert got[4]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    assert got[4]["usage"]["total_tokens"] == 10  # type: ignore[index]
    assert got[5] == wire.DONE
    assert {e["id"] for e in got[:5]} == {completion.id}  # type: ignore[index]


async def test_a_failed_stream_ends_with_an_error_event_then_done() -> None:
    async def items() -> AsyncIterator[Delta | Answer]:
        yield Delta("part")
        raise ProviderFailedError(ProviderError("p", "broken stream", status=502))

    got = events([chunk async for chunk in wire.CompletionEnvelope(chat_request()).events(items())])
    assert got[-2] == {
        "error": {
            "message": "the model provider failed: p: broken stream",
            "type": "api_error",
            "param": None,
            "code": "provider_error",
        }
    }
    assert got[-1] == wire.DONE


def test_error_types_follow_openai() -> None:
    assert [wire.error_type(s) for s in (400, 401, 403, 404, 429, 502)] == [
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "invalid_request_error",
        "rate_limit_error",
        "api_error",
    ]


def test_the_model_list_ends_with_the_embedding_models() -> None:
    chat = [("kb", "myaiserv", True), ("local/extractive", "local", False)]
    listed = msgspec.to_builtins(wire.model_list(chat, ["minilm", "bge"]))
    assert [(m["id"], m["retrieval"]) for m in listed["data"]] == [
        ("kb", True),
        ("local/extractive", False),
        ("minilm", False),
        ("bge", False),
    ]


async def test_a_dependency_down_mid_stream_is_a_service_unavailable_error_event() -> None:
    async def items() -> AsyncIterator[Delta | Answer]:
        raise DependencyUnavailableError("elasticsearch")
        yield Delta("never")  # an async generator

    got = events([chunk async for chunk in wire.CompletionEnvelope(chat_request()).events(items())])
    assert got[-2] == {
        "error": {
            "message": "elasticsearch is unavailable",
            "type": "api_error",
            "param": None,
            "code": "service_unavailable",
        }
    }
