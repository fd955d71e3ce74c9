from __future__ import annotations

from myaiserv.llm.base import ChatMessage, GenerationParams, Passage, Usage
from myaiserv.llm.registry import ResolvedModel
from myaiserv.rag.answer_cache import decode, encode, fingerprint, material
from myaiserv.rag.context import Grounding
from myaiserv.rag.result import Answer
from myaiserv.rag.schemas import RetrievalOptions
from tests.unit.rag.support import chat_request


def test_whitespace_does_not_make_another_request() -> None:
    a = chat_request(messages=(ChatMessage("user", "what  is\nrecall?"),))
    b = chat_request(messages=(ChatMessage("user", " what is recall? "),))
    assert fingerprint(a) == fingerprint(b)
    assert material(a)["messages"] == [["user", "what is recall?"]]


def test_anything_that_changes_the_answer_changes_the_key() -> None:
    base = chat_request()
    variants = [
        chat_request(messages=(ChatMessage("user", "what is precision?"),)),
        chat_request(params=GenerationParams(temperature=0.5)),
        chat_request(retrieval=False),
        chat_request(retrieval_options=RetrievalOptions(k=3)),
        chat_request(model=ResolvedModel("other", [], retrieval=True)),
    ]
    keys = {fingerprint(base), *(fingerprint(v) for v in variants)}
    assert len(keys) == 1 + len(variants)


def test_an_answer_round_trips_as_a_cached_answer() -> None:
    passage = Passage(1, "c1", "d1", "T", None, "alpha", 0.5, char_start=0, char_end=5)
    answer = Answer(
        text="alpha [1]",
        finish_reason="stop",
        usage=Usage(10, 2),
        target="local/extractive",
        citations=[{"index": 1, "chunk_id": "c1"}],
        grounding=Grounding((passage,), {"mode": "hybrid"}),
        ttft_ms=12.0,
        attempts=("local/extractive",),
    )
    replayed = decode(encode(answer))
    assert replayed.cached
    assert (replayed.text, replayed.usage, replayed.target) == (
        answer.text,
        Usage(10, 2),
        answer.target,
    )
    assert replayed.citations == answer.citations
    assert replayed.grounding.passages == (passage,)
    assert replayed.grounding.trace == {}  # a replay retrieved nothing
    assert (replayed.ttft_ms, replayed.run_id, replayed.attempts) == (None, None, ())
