"""What a chat call asks for, checked once and then fixed: ``ChatRequest`` is immutable,
and everything after preparation reads it instead of changing it.

The checks here are pure: they refuse what no provider could answer (no user message,
tool calls, non-text parts, far too much text) before anything is looked up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import ChatMessage, GenerationParams
from myaiserv.llm.registry import ProviderRegistry, ResolvedModel
from myaiserv.rag.errors import ContextTooLongError, ModelNotFoundError, NotSupportedError
from myaiserv.rag.schemas import ChatMessageIn, PromptOptions, RetrievalOptions
from myaiserv.search.plan import Plan

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
MAX_INPUT_CHARS_PER_TOKEN = 8  # refuse without tokenizing what cannot possibly fit
MIN_K, MAX_K = 1, 50


@dataclass(frozen=True)
class SystemPrompt:
    """The template the system message is rendered from: a stored prompt version
    (``version_id`` and ``ref`` set) or a built-in one."""

    template: str
    version_id: UUID | None = None
    ref: dict[str, Any] | None = None  # {"name", "version", "id"} of a stored version


@dataclass(frozen=True)
class ChatRequest:
    """One checked chat call, as every later step sees it."""

    model: ResolvedModel
    question: str  # the last user message
    messages: tuple[ChatMessage, ...]  # the client's, as sent
    params: GenerationParams
    retrieval: bool
    retrieval_options: RetrievalOptions
    prompt_options: PromptOptions
    system_prompt: SystemPrompt
    conversation_id: UUID | None = None
    history: tuple[ChatMessage, ...] = ()  # earlier turns, oldest first, within budget
    search_plan: Plan | None = None  # the retrieval search, planned (None: no retrieval)
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def resolve_model(registry: ProviderRegistry, name: str) -> ResolvedModel:
    resolved = registry.resolve(name)
    if resolved is None or not resolved.targets:
        raise ModelNotFoundError(name, [n for n, _, _ in registry.model_names()])
    return resolved


def content_text(message: ChatMessageIn, i: int) -> str:
    """A message's text; content parts must all be text."""
    content = message.content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise NotSupportedError(
                    f"messages[{i}].content[{j}]", "only text content parts are supported"
                )
            texts.append(str(part.get("text", "")))
        content = "\n".join(texts)
    if not isinstance(content, str) or not content.strip():
        raise InvalidInputError(f"messages[{i}].content", "must be non-empty text")
    if "\x00" in content:
        raise InvalidInputError(f"messages[{i}].content", "contains a NUL character")
    return content


def check_messages(
    messages: list[ChatMessageIn], max_input_tokens: int
) -> tuple[tuple[ChatMessage, ...], str]:
    """The messages as the provider will get them, and the question (the last user
    message). Text that cannot fit ``max_input_tokens`` is refused before tokenizing."""
    if not messages:
        raise InvalidInputError("messages", "give at least one message")
    out = []
    for i, m in enumerate(messages):
        if m.role in ("tool", "function") or m.tool_calls:
            raise NotSupportedError(f"messages[{i}].role", "tool calls are not supported")
        if m.role not in ROLES:
            raise InvalidInputError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}")
        out.append(ChatMessage(m.role, content_text(m, i)))
    question = next((m.content for m in reversed(out) if m.role == "user"), None)
    if question is None:
        raise InvalidInputError("messages", "give at least one user message")
    chars = sum(len(m.content) for m in out)
    if chars > max_input_tokens * MAX_INPUT_CHARS_PER_TOKEN:
        raise ContextTooLongError(chars // MAX_INPUT_CHARS_PER_TOKEN, max_input_tokens)
    return tuple(out), question


def check_retrieval(options: RetrievalOptions) -> RetrievalOptions:
    if options.k is not None and not MIN_K <= options.k <= MAX_K:
        raise InvalidInputError("retrieval.k", f"must be between {MIN_K} and {MAX_K}")
    return options


def conversation_uuid(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInputError("conversation_id", "must be a UUID") from None
