"""The offline answerer: no model to call, no key needed.

It answers from the retrieved passages alone: every sentence of every passage is embedded
with the same model used for search, the sentences most similar to the question are
chosen (near-duplicates skipped), and they are returned best first, each followed by the
``[n]`` marker of its passage. Deterministic: the same question and passages give the
same answer, streamed or not. It is named ``extractive`` everywhere (model list, runs),
so nobody mistakes it for a generative model.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.llm.base import ChatMessage, Completion, Delta, GenerationParams, Passage, Usage

NO_ANSWER = "I found nothing in the knowledge base that answers this question."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}")
MIN_SENTENCE_CHARS = 20
MAX_SENTENCE_CHARS = 600


def sentences(text: str) -> list[str]:
    out = []
    for part in _SENTENCE_END.split(text):
        sentence = " ".join(part.split())
        if len(sentence) >= MIN_SENTENCE_CHARS:
            out.append(sentence[:MAX_SENTENCE_CHARS])
    return out


def question_of(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


class ExtractiveProvider:
    def __init__(
        self,
        name: str,
        embedder: CachedEmbedder,
        *,
        max_sentences: int = 4,
        min_similarity: float = 0.2,
        duplicate_similarity: float = 0.92,
    ) -> None:
        self.name = name
        self.embedder = embedder
        self.max_sentences = max_sentences
        self.min_similarity = min_similarity
        self.duplicate_similarity = duplicate_similarity

    def _tokens(self, texts: list[str]) -> int:
        return sum(self.embedder.embedder.count_tokens(texts)) if texts else 0

    async def _answer(
        self, messages: list[ChatMessage], params: GenerationParams, passages: list[Passage]
    ) -> Completion:
        question = question_of(messages)
        candidates = [(p.n, s) for p in passages for s in sentences(p.text)]
        # Counting tokens is CPU work on the tokenizer: off the event loop.
        prompt_tokens = await asyncio.to_thread(self._tokens, [m.content for m in messages])
        chosen: list[tuple[int, str]] = []
        if question.strip() and candidates:
            # The question as a search query (with the model's query instruction, if it
            # has one), the sentences as passages.
            query_text = self.embedder.embedder.query_instruction + question
            vectors = await self.embedder.encode([query_text] + [s for _, s in candidates])
            query, found = vectors[0], vectors[1:]
            similarity = found @ query
            picked: list[int] = []
            # Best first; ties by passage order, then position: deterministic.
            for i in sorted(range(len(candidates)), key=lambda i: (-similarity[i], i)):
                if similarity[i] < self.min_similarity or len(picked) >= self.max_sentences:
                    break
                if any(float(found[i] @ found[j]) >= self.duplicate_similarity for j in picked):
                    continue
                picked.append(i)
            chosen = [candidates[i] for i in picked]
        text, finish, tokens = await asyncio.to_thread(self._compose, chosen, params.max_tokens)
        return Completion(text, Usage(prompt_tokens, tokens), finish)

    def _compose(
        self, chosen: list[tuple[int, str]], max_tokens: int | None
    ) -> tuple[str, str, int]:
        """The answer from the chosen sentences within ``max_tokens``: its text, finish
        reason and tokens."""
        finish = "stop"
        parts: list[str] = []
        for n, sentence in chosen:
            part = f"{sentence} [{n}]"
            if self._tokens([" ".join([*parts, part])]) > (max_tokens or 1 << 30):
                finish = "length"
                break
            parts.append(part)
        text = " ".join(parts) if parts else NO_ANSWER
        return text, finish, self._tokens([text])

    async def complete(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> Completion:
        return await self._answer(messages, params, passages)

    async def stream(
        self,
        model: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        passages: list[Passage],
    ) -> AsyncIterator[Delta]:
        """The same answer as ``complete``, a word at a time."""
        answer = await self._answer(messages, params, passages)
        for piece in re.findall(r"\S+\s*", answer.text):
            yield Delta(text=piece)
        yield Delta(finish_reason=answer.finish_reason, usage=answer.usage)
