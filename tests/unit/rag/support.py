"""Values the RAG unit tests build requests from."""

from __future__ import annotations

from typing import Any

from myaiserv.config import ProviderSettings
from myaiserv.llm.base import ChatMessage, GenerationParams
from myaiserv.llm.registry import ResolvedModel, Target
from myaiserv.rag.request import ChatRequest, SystemPrompt
from myaiserv.rag.schemas import PromptOptions, RetrievalOptions


def words(texts: list[str]) -> list[int]:
    """A token counter: one token per word."""
    return [len(t.split()) for t in texts]


def target(provider: Any, name: str = "p", model: str = "m", **prices: float) -> Target:
    settings = ProviderSettings(name=name, kind="openai", models=[model], **prices)
    return Target(provider, settings, model)


def chat_request(**changes: Any) -> ChatRequest:
    values: dict[str, Any] = {
        "model": ResolvedModel("kb", [], retrieval=True),
        "question": "what is recall?",
        "messages": (ChatMessage("user", "what is recall?"),),
        "params": GenerationParams(),
        "retrieval": True,
        "retrieval_options": RetrievalOptions(),
        "prompt_options": PromptOptions(),
        "system_prompt": SystemPrompt("Sources:\n{context}\nQ: {question}"),
    }
    return ChatRequest(**{**values, **changes})
