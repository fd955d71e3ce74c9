"""What a chat call produces: the answer, with what it was grounded in and how it was
made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from myaiserv.llm.base import Usage
from myaiserv.rag.context import Grounding


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    usage: Usage
    target: str  # provider/model
    citations: list[dict[str, Any]]
    grounding: Grounding = field(default_factory=Grounding)
    cached: bool = False
    ttft_ms: float | None = None
    run_id: UUID | None = None  # set once the run is recorded
    attempts: tuple[str, ...] = ()  # the targets tried, in order
