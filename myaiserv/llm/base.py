"""What every LLM provider offers the RAG service: a completion, or a stream of deltas,
for a list of chat messages. Providers raise ``ProviderError`` (never a client library's
exception), which says whether another attempt, or another provider, may succeed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as the model sees it: ``[n]`` in the context block."""

    n: int
    chunk_id: str
    document_id: str
    title: str | None
    source: str | None
    text: str
    score: float
    kind: str = "documents"
    char_start: int | None = None  # the chunk's span in its document's text
    char_end: int | None = None
    heading: str | None = None  # the chunk's heading path (Markdown, HTML)
    page_start: int | None = None  # a PDF chunk's first and last page
    page_end: int | None = None

    @property
    def url(self) -> str | None:
        """Where the passage can be opened: its document at its first page (a PDF), or
        the document."""
        if self.kind != "documents":
            return None
        base = f"/v1/documents/{self.document_id}"
        return f"{base}/pages/{self.page_start}" if self.page_start else base

    @property
    def pages(self) -> str | None:
        """ "p. 3" or "pp. 3-4" (None: not from a PDF)."""
        if self.page_start is None:
            return None
        first, last = self.page_start, self.page_end or self.page_start
        return f"p. {first}" if last == first else f"pp. {first}-{last}"


@dataclass(frozen=True)
class GenerationParams:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Completion:
    text: str
    usage: Usage
    finish_reason: str = "stop"


@dataclass
class Delta:
    """A piece of a streamed answer; the last one carries ``finish_reason`` and, when the
    provider reports it, ``usage``."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class ProviderError(Exception):
    """A provider call failed. ``status`` is what our client should see: 429 (rate
    limited upstream), 502 (bad answer or broken stream), 503 (unavailable / circuit
    open), 504 (timeout). ``retryable``: another attempt may succeed; ``failover``:
    another provider may."""

    provider: str
    message: str
    status: int = 502
    retryable: bool = False
    failover: bool = True
    retry_after_s: float | None = None
    upstream_status: int | None = field(default=None)

    def __str__(self) -> str:
        return f"{self.provider}: {self.message}"


class Provider(Protocol):
    name: str

    async def complete(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> Completion: ...

    def stream(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> AsyncIterator[Delta]: ...
