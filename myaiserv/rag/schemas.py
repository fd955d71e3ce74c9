"""The OpenAI wire format (chat completions, models, embeddings) and our extensions.

Unknown top-level fields are ignored, as OpenAI-compatible servers do (clients send new
fields before servers know them); fields we cannot honour (``n`` > 1, ``tools``,
non-text content) are refused with a clear "not supported" error instead.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from myaiserv.search.schemas import Filters


class RetrievalOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Extension: ``retrieval`` in a chat request (clients that don't send it get the
    model's default: on for knowledge-base models)."""

    enabled: bool | None = None
    kinds: list[str] | None = None  # default: documents
    mode: Literal["bm25", "vector", "hybrid"] = "hybrid"
    fusion: Literal["rrf", "linear"] | None = None  # hybrid; default: search.fusion
    k: int | None = None
    filters: Filters | None = None


class PromptOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Extension: ``prompt``: which stored template is the system prompt."""

    name: str | None = None
    label: str | None = None
    version: int | None = None
    variables: dict[str, Any] = msgspec.field(default_factory=dict)


class ChatMessageIn(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    messages: list[ChatMessageIn] = msgspec.field(default_factory=list)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    # extensions
    retrieval: RetrievalOptions | None = None
    prompt: PromptOptions | None = None
    conversation_id: str | None = None


class RagAnswerRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/rag/answer: one question, the answer with its sources and trace."""

    question: str
    model: str | None = None
    conversation_id: str | None = None
    retrieval: RetrievalOptions | None = None
    prompt: PromptOptions | None = None
    max_tokens: int | None = None
    temperature: float | None = None


class EmbeddingsRequest(msgspec.Struct, kw_only=True):
    input: str | list[Any]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


# -- Responses ------------------------------------------------------------------------------
# The bodies the handlers return (``wire`` builds them), so the OpenAPI document describes
# what is sent by construction; a streamed completion's chunks are not described here.


class TokenUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Citation(msgspec.Struct, kw_only=True):
    """A passage the answer cites as ``[index]``."""

    index: int
    chunk_id: str
    document_id: str
    title: str | None
    source: str | None
    score: float
    text: str
    char_start: int | None
    char_end: int | None
    heading: str | None = None
    page_start: int | None = None  # a PDF's pages the passage spans
    page_end: int | None = None
    url: str | None = None  # where it opens: the document, at its first page for a PDF


class AnswerExtensions(msgspec.Struct, kw_only=True):
    """Our fields on every answer, beside OpenAI's."""

    citations: list[Citation]
    run_id: str | None
    cached: bool
    provider_model: str  # provider/model that answered
    conversation_id: str | None


class AssistantMessage(msgspec.Struct, kw_only=True):
    role: Literal["assistant"]
    content: str


class ChatChoice(msgspec.Struct, kw_only=True):
    index: int
    message: AssistantMessage
    finish_reason: str


class ChatCompletion(AnswerExtensions, kw_only=True):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: TokenUsage


class ModelCard(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    retrieval: bool  # a knowledge-base alias: answers are grounded in the tenant's data


class ModelList(msgspec.Struct, kw_only=True):
    object: Literal["list"]
    data: list[ModelCard]


class Embedding(msgspec.Struct, kw_only=True):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # str: base64 of little-endian float32


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, kw_only=True):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class PassageOut(msgspec.Struct, kw_only=True):
    """A passage given to the model as ``[n]``."""

    n: int
    chunk_id: str
    document_id: str
    title: str | None
    source: str | None
    text: str
    score: float
    kind: str
    char_start: int | None
    char_end: int | None
    heading: str | None = None
    page_start: int | None = None
    page_end: int | None = None
    url: str | None = None


class TraceHit(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    score: float
    ranks: dict[str, int | None]
    scores: dict[str, float | None]


class RetrievalTrace(msgspec.Struct, kw_only=True):
    """Empty when retrieval was off."""

    mode: Literal["bm25", "vector", "hybrid"] | msgspec.UnsetType = msgspec.UNSET
    kinds: list[str] | msgspec.UnsetType = msgspec.UNSET
    hits: list[TraceHit] | msgspec.UnsetType = msgspec.UNSET


class PromptRef(msgspec.Struct, kw_only=True):
    name: str
    version: int
    id: str


class RagAnswer(AnswerExtensions, kw_only=True):
    answer: str
    model: str
    finish_reason: str
    usage: TokenUsage
    passages: list[PassageOut]
    retrieval: RetrievalTrace
    prompt: PromptRef | None
