from __future__ import annotations

from typing import Any

import pytest

from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import ChatMessage, Passage
from myaiserv.rag.context import (
    NO_RETRIEVAL_SYSTEM_PROMPT,
    citations_of,
    context_block,
    ground,
    provider_messages,
    recent_turns,
    search_request,
    system_message,
)
from myaiserv.rag.errors import ContextTooLongError
from myaiserv.rag.request import SystemPrompt
from myaiserv.rag.schemas import PromptOptions, RetrievalOptions
from myaiserv.search.schemas import Hit, SearchResponse, Total
from tests.unit.rag.support import chat_request, words


def hit(id_: str, kind: str = "documents", **fields: Any) -> Hit:
    return Hit(
        id=id_,
        kind=kind,
        type="chunk",
        score=1.0,
        ranks={"bm25": 1, "vector": None},
        scores={"bm25": 2.0, "vector": None},
        fields=fields,
    )


def response(*hits: Hit) -> SearchResponse:
    return SearchResponse(mode="hybrid", hits=list(hits), total=Total(len(hits), "eq"))


def passage(n: int, text: str = "text", **kw: Any) -> Passage:
    return Passage(
        n=n,
        chunk_id=f"c{n}",
        document_id=f"d{n}",
        title=None,
        source=None,
        text=text,
        score=1.0,
        **kw,
    )


def test_the_search_asks_for_each_kinds_text_and_the_chunk_span() -> None:
    options = RetrievalOptions(kinds=["documents", "runs"], mode="bm25")
    req = search_request("q" * 50, options, default_k=5, max_query_chars=10)
    assert req.query == "q" * 10
    assert req.kinds == ["documents", "runs"]
    assert req.size == 5
    assert req.fields == ["char_end", "char_start", "output", "text"]
    assert req.highlight is False
    assert search_request("q", RetrievalOptions(k=3, kinds=["prompts"]), 5, 10).fields == [
        "template"
    ]


def test_passages_fill_the_budget_best_first_and_skip_empty_texts() -> None:
    found = response(
        hit("a", text="one two three", document_id="doc-a", title="A", char_start=0, char_end=13),
        hit("b", text="   "),
        hit("c", kind="runs", output="four five"),
        hit("d", text="six seven eight"),
    )
    grounding = ground(found, RetrievalOptions(), budget=5, count=words)
    assert [(p.n, p.chunk_id, p.kind) for p in grounding.passages] == [
        (1, "a", "documents"),
        (2, "c", "runs"),
    ]
    first = grounding.passages[0]
    assert (first.document_id, first.title, first.char_start, first.char_end) == (
        "doc-a",
        "A",
        0,
        13,
    )
    assert grounding.passages[1].document_id == "c"  # no document: the hit itself
    assert grounding.trace["mode"] == "hybrid"
    assert [h["id"] for h in grounding.trace["hits"]] == ["a", "b", "c", "d"]
    assert grounding.trace["hits"][0]["ranks"] == {"bm25": 1, "vector": None}


def test_the_first_passage_always_fits() -> None:
    found = response(hit("a", text="far too many words for this budget"))
    assert len(ground(found, RetrievalOptions(), budget=1, count=words).passages) == 1


def test_context_block_numbers_passages_with_title_and_source() -> None:
    block = context_block(
        [passage(1, "alpha", kind="documents"), Passage(2, "c2", "d2", "T", "s.pdf", "beta", 1.0)]
    )
    assert block == "[1]\nalpha\n\n[2] T (s.pdf)\nbeta"
    assert context_block([]) == "(no sources found)"


def test_a_passage_names_its_heading_and_pages_and_opens_at_its_page() -> None:
    paged = Passage(3, "c3", "d3", "Manual", "m.pdf", "text", 1.0, heading="Install",
                    page_start=4, page_end=5)  # fmt: skip
    one_page = Passage(4, "c4", "d4", "Manual", None, "more", 1.0, page_start=7, page_end=7)
    assert context_block([paged, one_page]) == (
        "[3] Manual > Install, pp. 4-5 (m.pdf)\ntext\n\n[4] Manual, p. 7\nmore"
    )
    assert (paged.url, one_page.url) == ("/v1/documents/d3/pages/4", "/v1/documents/d4/pages/7")
    plain = Passage(5, "c5", "d5", "Notes", None, "x", 1.0, heading="Notes")
    assert (plain.pages, plain.url) == (None, "/v1/documents/d5")
    assert context_block([plain]) == "[5] Notes\nx"  # a heading that repeats the title
    cited = citations_of("See [3].", [paged])[0]
    assert (cited["heading"], cited["page_start"], cited["page_end"]) == ("Install", 4, 5)
    assert cited["url"] == "/v1/documents/d3/pages/4"


def test_the_system_message_renders_context_question_and_variables() -> None:
    request = chat_request(
        system_prompt=SystemPrompt("{tone}. Sources:\n{context}\nQ: {question}"),
        prompt_options=PromptOptions(variables={"tone": "Be brief"}),
    )
    message = system_message(request, [passage(1, "alpha")])
    assert message == ChatMessage("system", "Be brief. Sources:\n[1]\nalpha\nQ: what is recall?")
    plain = system_message(chat_request(system_prompt=SystemPrompt(NO_RETRIEVAL_SYSTEM_PROMPT)), [])
    assert plain.content == NO_RETRIEVAL_SYSTEM_PROMPT


def test_a_missing_variable_names_the_prompt_field() -> None:
    request = chat_request(system_prompt=SystemPrompt("{tone} {context}"))
    with pytest.raises(InvalidInputError) as raised:
        system_message(request, [])
    assert raised.value.field.startswith("prompt.")


def test_history_keeps_the_newest_turns_that_fit_oldest_first() -> None:
    rows = [
        ("assistant", "three words here"),
        ("system", "ignored"),
        ("user", "two words"),
        ("user", "old"),
    ]
    assert recent_turns(rows, budget=5, count=words) == (
        ChatMessage("user", "two words"),
        ChatMessage("assistant", "three words here"),
    )
    assert recent_turns(rows, budget=2, count=words) == ()


def test_provider_messages_are_system_history_then_the_client_s() -> None:
    history = (ChatMessage("user", "before"), ChatMessage("assistant", "reply"))
    request = chat_request(history=history, system_prompt=SystemPrompt("sys"))
    messages = provider_messages(request, [], max_input_tokens=100, count=words)
    assert messages == [ChatMessage("system", "sys"), *history, *request.messages]
    with pytest.raises(ContextTooLongError):
        provider_messages(request, [], max_input_tokens=3, count=words)


def test_citations_are_the_cited_passages_once_in_order_of_first_citation() -> None:
    passages = [passage(1, "a"), passage(2, "b"), passage(3, "c")]
    cited = citations_of("Yes [2], and [1]; again [2]. Not [9] nor [x].", passages)
    assert [(c["index"], c["chunk_id"], c["text"]) for c in cited] == [
        (2, "c2", "b"),
        (1, "c1", "a"),
    ]
    assert citations_of("no markers", passages) == []
