"""Retrieval-augmented answers, one call from prepared request to recorded run.

1. ``prepare`` (``preparation``): model, messages, options, rate limit, quota, system
   prompt and conversation history, into an immutable ``ChatRequest``;
2. the answer cache (``answer_cache``): an identical request replays its answer;
3. grounding (``context``): retrieval through the tenant's search, passages numbered
   ``[1]``.. within a token budget, the messages the provider gets;
4. generation (``generation``): the targets in failover order, streamed or not;
5. citations, then recording (``recording``): the run and the conversation's new turns in
   one transaction, quota counters, metrics.

The service reads the database in one session while preparing and writes in one
transaction when the answer is complete; no connection is held while a provider
generates.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from myaiserv.llm.base import ChatMessage, Delta, GenerationParams, Usage
from myaiserv.rag.answer_cache import AnswerCache
from myaiserv.rag.context import (
    Grounding,
    Retriever,
    TokenCounter,
    citations_of,
    provider_messages,
    tokens,
)
from myaiserv.rag.errors import ProviderFailedError
from myaiserv.rag.generation import Generated, GenerationFailedError, generate
from myaiserv.rag.preparation import Preparer
from myaiserv.rag.recording import Recorder
from myaiserv.rag.request import ChatRequest
from myaiserv.rag.result import Answer
from myaiserv.rag.schemas import ChatMessageIn, PromptOptions, RetrievalOptions

_WORD = re.compile(r"\S+\s*")  # how a cached answer is replayed as a stream


class RagService:
    def __init__(
        self,
        *,
        preparer: Preparer,
        retriever: Retriever,
        cache: AnswerCache,
        recorder: Recorder,
        count_tokens: TokenCounter,
        max_input_tokens: int,
    ) -> None:
        self.preparer = preparer
        self.retriever = retriever
        self.cache = cache
        self.recorder = recorder
        self.count_tokens = count_tokens
        self.max_input_tokens = max_input_tokens

    async def prepare(
        self,
        *,
        model: str | None,
        messages: list[ChatMessageIn],
        params: GenerationParams,
        retrieval: RetrievalOptions | None = None,
        prompt: PromptOptions | None = None,
        conversation_id: str | None = None,
    ) -> ChatRequest:
        """Check the call; raises for anything that would refuse it (before any
        response is started)."""
        return await self.preparer.prepare(
            model=model,
            messages=messages,
            params=params,
            retrieval=retrieval,
            prompt=prompt,
            conversation_id=conversation_id,
        )

    async def complete(self, request: ChatRequest) -> Answer:
        """The whole answer, recorded."""
        async for item in self._events(request, stream=False):
            if isinstance(item, Answer):
                return item
        raise RuntimeError("the answer stream ended without an answer")

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta | Answer]:
        """Text deltas as the provider sends them, then the recorded ``Answer``. A failure
        after the first delta ends the stream with the error (recorded)."""
        async for item in self._events(request, stream=True):
            yield item

    async def _events(self, request: ChatRequest, *, stream: bool) -> AsyncIterator[Delta | Answer]:
        key = await self.cache.key(request)
        cached = await self.cache.get(key)
        if cached is not None:
            for piece in _WORD.findall(cached.text):
                yield Delta(text=piece)
            yield await self.recorder.record(request, cached)
            return
        grounding = await self._ground(request)
        # Counting tokens is CPU work on the tokenizer: off the event loop.
        messages = await asyncio.to_thread(
            provider_messages,
            request,
            grounding.passages,
            self.max_input_tokens,
            self.count_tokens,
        )
        passages = list(grounding.passages)
        try:
            async for item in generate(
                request.model.targets,
                messages,
                request.params,
                passages,
                stream=stream,
                started=request.started,
            ):
                if isinstance(item, Delta):
                    yield item
                    continue
                answer = await asyncio.to_thread(self._answer, item, grounding, messages)
                await self.cache.put(key, answer)
                yield await self.recorder.record(request, answer)
        except GenerationFailedError as failed:
            await self.recorder.record_failure(request, passages, failed)
            raise ProviderFailedError(failed.error) from failed

    async def _ground(self, request: ChatRequest) -> Grounding:
        return await self.retriever.ground(request, self.count_tokens)

    def _answer(
        self, generated: Generated, grounding: Grounding, messages: list[ChatMessage]
    ) -> Answer:
        return Answer(
            text=generated.text,
            finish_reason=generated.finish_reason,
            usage=self._usage(generated, messages),
            target=generated.target.label,
            citations=citations_of(generated.text, grounding.passages),
            grounding=grounding,
            ttft_ms=generated.ttft_ms,
            attempts=generated.attempts,
        )

    def _usage(self, generated: Generated, messages: list[ChatMessage]) -> Usage:
        """The provider's count, or our tokenizer's estimate where it reports none."""
        prompt_tokens = generated.usage.prompt_tokens
        if not prompt_tokens:
            prompt_tokens = tokens(self.count_tokens, [m.content for m in messages])
        completion_tokens = generated.usage.completion_tokens
        if not completion_tokens and generated.text:
            completion_tokens = tokens(self.count_tokens, [generated.text])
        return Usage(prompt_tokens, completion_tokens)
