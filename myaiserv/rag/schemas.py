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
