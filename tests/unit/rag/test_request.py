from __future__ import annotations

import pytest

from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import ChatMessage
from myaiserv.rag.errors import ContextTooLongError, NotSupportedError
from myaiserv.rag.request import (
    MAX_INPUT_CHARS_PER_TOKEN,
    check_messages,
    check_retrieval,
    conversation_uuid,
)
from myaiserv.rag.schemas import ChatMessageIn, RetrievalOptions
from tests.unit.rag.support import chat_request


def test_the_question_is_the_last_user_message() -> None:
    messages, question = check_messages(
        [
            ChatMessageIn(role="system", content="be brief"),
            ChatMessageIn(role="user", content="first"),
            ChatMessageIn(role="assistant", content="answer"),
            ChatMessageIn(role="user", content=[{"type": "text", "text": "second"}]),
        ],
        max_input_tokens=100,
    )
    assert question == "second"
    assert messages[0] == ChatMessage("system", "be brief")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize(
    ("messages", "error", "field"),
    [
        ([], InvalidInputError, "messages"),
        ([ChatMessageIn(role="system", content="x")], InvalidInputError, "messages"),
        ([ChatMessageIn(role="robot", content="x")], InvalidInputError, "messages[0].role"),
        ([ChatMessageIn(role="tool", content="x")], NotSupportedError, "messages[0].role"),
        ([ChatMessageIn(role="user", content="  ")], InvalidInputError, "messages[0].content"),
        ([ChatMessageIn(role="user", content="a\x00b")], InvalidInputError, "messages[0].content"),
        (
            [ChatMessageIn(role="user", content=[{"type": "image_url", "image_url": {}}])],
            NotSupportedError,
            "messages[0].content[0]",
        ),
    ],
)
def test_bad_messages_name_their_field(
    messages: list[ChatMessageIn], error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as raised:
        check_messages(messages, max_input_tokens=100)
    assert field in str(raised.value)


def test_text_that_cannot_fit_is_refused_before_tokenizing() -> None:
    limit = 10
    fits = "x" * (limit * MAX_INPUT_CHARS_PER_TOKEN)
    check_messages([ChatMessageIn(role="user", content=fits)], max_input_tokens=limit)
    with pytest.raises(ContextTooLongError):
        check_messages([ChatMessageIn(role="user", content=fits + "x")], max_input_tokens=limit)


def test_k_and_conversation_id_are_checked() -> None:
    assert check_retrieval(RetrievalOptions(k=50)).k == 50
    with pytest.raises(InvalidInputError, match=r"retrieval\.k"):
        check_retrieval(RetrievalOptions(k=0))
    assert conversation_uuid(None) is None
    with pytest.raises(InvalidInputError, match="conversation_id"):
        conversation_uuid("not-a-uuid")


def test_a_request_is_immutable() -> None:
    request = chat_request()
    with pytest.raises(AttributeError):
        request.question = "changed"  # type: ignore[misc]
