"""What the model reads: retrieved passages numbered ``[1]``.. within a token budget, the
system prompt rendered around them, earlier turns within their own budget, and the
citations an answer makes back to the passages.

Everything here but ``Retriever`` is a pure function of its arguments.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import ChatMessage, Passage
from myaiserv.prompts.template import TemplateError, render, variables_of
from myaiserv.rag.errors import ContextTooLongError
from myaiserv.rag.request import ChatRequest
from myaiserv.rag.schemas import RetrievalOptions
from myaiserv.search import plan
from myaiserv.search.kinds import Kind
from myaiserv.search.plan import Plan
from myaiserv.search.schemas import Hit, SearchRequest, SearchResponse

# Counts the tokens of each text with the embedding model's tokenizer.
TokenCounter = Callable[[list[str]], list[int]]

BUILTIN_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the user's question using only the numbered "
    "sources below, and cite each source you use with its number in square brackets, "
    "like [1]. If the sources do not contain the answer, say that you do not know.\n\n"
    "Sources:\n{context}"
)
NO_RETRIEVAL_SYSTEM_PROMPT = "You are a helpful assistant."
DEFAULT_KINDS: tuple[Kind, ...] = ("documents",)
# The field of each kind that holds the text a passage quotes.
TEXT_FIELD: dict[str, str] = {
    "documents": "text",
    "conversations": "content",
    "prompts": "template",
    "runs": "output",
}
_MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Grounding:
    """The passages given to the model, and the retrieval trace (each hit's ranks and
    scores in every list) for ``/v1/rag/answer``."""

    passages: tuple[Passage, ...] = ()
    trace: dict[str, Any] = field(default_factory=dict)


def tokens(count: TokenCounter, texts: Sequence[str]) -> int:
    return sum(count(list(texts))) if texts else 0


def kinds_of(options: RetrievalOptions) -> list[Kind]:
    """The kinds retrieval reads (checked when the call was prepared)."""
    return plan.kinds_of(options.kinds or list(DEFAULT_KINDS))


def search_request(
    question: str, options: RetrievalOptions, default_k: int, max_query_chars: int
) -> SearchRequest:
    """The search a chat call makes: the question over the asked kinds, with the text
    (and, for documents, the chunk's span) of each hit and no highlights."""
    kinds = kinds_of(options)
    text_fields = {TEXT_FIELD[kind] for kind in kinds if kind in TEXT_FIELD}
    # Headings and pages come with every hit; the span only when asked for.
    span = {"char_start", "char_end"} if "documents" in kinds else set()
    return SearchRequest(
        query=question[:max_query_chars],
        kinds=list[str](kinds),
        mode=options.mode,
        fusion=options.fusion,
        filters=options.filters,
        size=options.k or default_k,
        fields=sorted(text_fields | span),
        highlight=False,
    )


def passage_of(n: int, hit: Hit, text: str) -> Passage:
    fields = hit.fields
    return Passage(
        n=n,
        chunk_id=hit.id,
        document_id=str(fields.get("document_id") or hit.id),
        title=fields.get("title") or fields.get("name"),
        source=fields.get("source"),
        text=text,
        score=hit.score,
        kind=hit.kind,
        char_start=fields.get("char_start"),
        char_end=fields.get("char_end"),
        heading=fields.get("heading") if hit.kind == "documents" else None,
        page_start=fields.get("page_start"),
        page_end=fields.get("page_end"),
    )


def ground(
    found: SearchResponse, options: RetrievalOptions, budget: int, count: TokenCounter
) -> Grounding:
    """Hits with text become passages, best first, until the next would overrun the
    token ``budget`` (the first always fits)."""
    passages: list[Passage] = []
    used = 0
    for hit in found.hits:
        text = str(hit.fields.get(TEXT_FIELD.get(hit.kind, "text")) or "")
        if not text.strip():
            continue
        cost = tokens(count, [text])
        if passages and used + cost > budget:
            break
        used += cost
        passages.append(passage_of(len(passages) + 1, hit, text))
    trace = {
        "mode": options.mode,
        "kinds": kinds_of(options),
        "hits": [
            {"id": h.id, "kind": h.kind, "score": h.score, "ranks": h.ranks, "scores": h.scores}
            for h in found.hits
        ],
    }
    return Grounding(tuple(passages), trace)


def context_block(passages: Sequence[Passage]) -> str:
    """The ``{context}`` of the system prompt: each passage under its number, title,
    heading and pages ("[2] Manual > Install, pp. 3-4 (manual.pdf)")."""
    if not passages:
        return "(no sources found)"
    blocks = []
    for passage in passages:
        head = f"[{passage.n}]"
        if passage.title:
            head += f" {passage.title}"
        if passage.heading and passage.heading != passage.title:
            head += f" > {passage.heading}"
        if passage.pages:
            head += f", {passage.pages}"
        if passage.source:
            head += f" ({passage.source})"
        blocks.append(f"{head}\n{passage.text}")
    return "\n\n".join(blocks)


def system_message(request: ChatRequest, passages: Sequence[Passage]) -> ChatMessage:
    """The template rendered with the request's variables, plus ``{context}`` and
    ``{question}`` where it uses them; a template problem names the ``prompt`` field."""
    template = request.system_prompt.template
    used = set(variables_of(template))
    values = dict(request.prompt_options.variables)
    if "context" in used:
        values["context"] = context_block(passages)
    if "question" in used:
        values["question"] = request.question
    try:
        return ChatMessage("system", render(template, values))
    except TemplateError as exc:
        where, message = exc.problems[0]
        raise InvalidInputError(f"prompt.{where}", message) from None


def recent_turns(
    rows: Sequence[tuple[str, str]], budget: int, count: TokenCounter
) -> tuple[ChatMessage, ...]:
    """The user and assistant turns of ``rows`` (role, content; newest first) that fit
    the token ``budget``, oldest first."""
    kept: list[ChatMessage] = []
    used = 0
    for role, content in rows:
        if role not in ("user", "assistant"):
            continue
        cost = tokens(count, [content])
        if used + cost > budget:
            break
        used += cost
        kept.append(ChatMessage(role, content))
    return tuple(reversed(kept))


def provider_messages(
    request: ChatRequest, passages: Sequence[Passage], max_input_tokens: int, count: TokenCounter
) -> list[ChatMessage]:
    """System prompt, earlier turns, the client's messages; refused when over the
    model's input limit."""
    messages = [system_message(request, passages), *request.history, *request.messages]
    needed = tokens(count, [m.content for m in messages])
    if needed > max_input_tokens:
        raise ContextTooLongError(needed, max_input_tokens)
    return messages


def citations_of(text: str, passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """The passages an answer cites with ``[n]``, in the order first cited."""
    by_n = {passage.n: passage for passage in passages}
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if n in by_n and n not in seen:
            seen.add(n)
            passage = by_n[n]
            out.append(
                {
                    "index": n,
                    "chunk_id": passage.chunk_id,
                    "document_id": passage.document_id,
                    "title": passage.title,
                    "source": passage.source,
                    "score": passage.score,
                    "text": passage.text,
                    "char_start": passage.char_start,
                    "char_end": passage.char_end,
                    "heading": passage.heading,
                    "page_start": passage.page_start,
                    "page_end": passage.page_end,
                    "url": passage.url,
                }
            )
    return out


class Searcher(Protocol):
    """What retrieval needs of search (``SearchService``)."""

    def plan(self, req: SearchRequest) -> Plan: ...

    async def retrieve(self, plan: Plan) -> SearchResponse: ...


class Retriever:
    """Retrieval for chat: the tenant's search, its request shaped for the model."""

    def __init__(
        self, search: Searcher, *, default_k: int, max_query_chars: int, budget: int
    ) -> None:
        self.search = search
        self.default_k = default_k
        self.max_query_chars = max_query_chars
        self.budget = budget

    def _request(self, question: str, options: RetrievalOptions) -> SearchRequest:
        return search_request(question, options, self.default_k, self.max_query_chars)

    def plan(self, question: str, options: RetrievalOptions) -> Plan:
        """The search a call will make, planned once when the call is checked: bad
        retrieval options fail before it starts, naming ``retrieval.*``."""
        try:
            return self.search.plan(self._request(question, options))
        except InvalidInputError as exc:
            raise exc.within("retrieval") from None

    async def ground(self, request: ChatRequest, count: TokenCounter) -> Grounding:
        """The passages of the call's planned search (none without retrieval)."""
        if request.search_plan is None:
            return Grounding()
        found = await self.search.retrieve(request.search_plan)
        return await asyncio.to_thread(ground, found, request.retrieval_options, self.budget, count)
