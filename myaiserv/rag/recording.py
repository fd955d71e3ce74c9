"""Recording a chat call: one transaction holds its run (tokens, latency, time to first
token, cost, status, retrieved and cited chunks, prompt version) and, with a
conversation, the new user and assistant messages; both reach the index through the
outbox. Then the tenant's quota counters and the LLM metrics.

A failed call is recorded too (status ``error`` or ``timeout``), but a failure to record
it never hides the provider's error from the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myaiserv import metrics
from myaiserv.conversations.service import ConversationService, NewMessage
from myaiserv.llm.base import Passage
from myaiserv.llm.registry import ProviderRegistry
from myaiserv.logging import get_logger
from myaiserv.quotas.service import ORIGIN, QuotaService
from myaiserv.rag.context import TokenCounter, tokens
from myaiserv.rag.generation import GenerationFailedError
from myaiserv.rag.request import ChatRequest
from myaiserv.rag.result import Answer
from myaiserv.runs.service import RunService

log = get_logger(__name__)
MAX_ERROR_CHARS = 4000
EMPTY_ANSWER = "(empty answer)"  # what the conversation keeps when the model said nothing


def run_fields(request: ChatRequest, passages: Sequence[Passage]) -> dict[str, Any]:
    """The fields every run of the call has, whatever its outcome."""
    return {
        "input": request.question,
        "prompt_version_id": request.system_prompt.version_id,
        "conversation_id": request.conversation_id,
        "retrieved_chunk_ids": [p.chunk_id for p in passages],
        "started_at": request.started_at,
        "finished_at": datetime.now(UTC),
        "latency_ms": round(request.elapsed_ms(), 3),
    }


class Recorder:
    def __init__(
        self,
        *,
        tenant_id: UUID,
        sessionmaker: async_sessionmaker[AsyncSession],
        registry: ProviderRegistry,
        quotas: QuotaService,
        count_tokens: TokenCounter,
    ) -> None:
        self.tenant_id = tenant_id
        self.sessionmaker = sessionmaker
        self.registry = registry
        self.quotas = quotas
        self.count_tokens = count_tokens

    def _cost(self, answer: Answer) -> float:
        provider, _, model = answer.target.partition("/")
        target = self.registry.target(provider, model)
        if answer.cached or target is None:
            return 0.0
        return target.cost_usd(answer.usage.prompt_tokens, answer.usage.completion_tokens)

    async def _turn(self, request: ChatRequest, answer: Answer) -> list[NewMessage]:
        # Counting tokens is CPU work on the tokenizer: off the event loop.
        question_tokens = await asyncio.to_thread(tokens, self.count_tokens, [request.question])
        return [
            NewMessage("user", request.question, token_count=question_tokens),
            NewMessage(
                "assistant",
                answer.text or EMPTY_ANSWER,
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
                token_count=answer.usage.completion_tokens,
            ),
        ]

    async def record(self, request: ChatRequest, answer: Answer) -> Answer:
        """The answer with its ``run_id``."""
        provider, _, model = answer.target.partition("/")
        cost = self._cost(answer)
        async with self.sessionmaker() as session, session.begin():
            run = await RunService(session, self.tenant_id).record(
                provider=provider,
                model=model,
                status="ok",
                output=answer.text,
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
                time_to_first_token_ms=round(answer.ttft_ms, 3) if answer.ttft_ms else None,
                cost_usd=cost,
                cited_chunk_ids=[c["chunk_id"] for c in answer.citations],
                metadata={
                    "origin": ORIGIN,
                    "requested_model": request.model.name,
                    "cached": answer.cached,
                    "retrieval": request.retrieval,
                    "finish_reason": answer.finish_reason,
                    "attempts": list(answer.attempts),
                },
                **run_fields(request, answer.grounding.passages),
            )
            if request.conversation_id is not None:
                await ConversationService(session, self.tenant_id).add_messages(
                    request.conversation_id, await self._turn(request, answer)
                )
        if not answer.cached:
            await self.quotas.add(answer.usage.total_tokens, cost)
        self._observe(request, answer, provider, model, cost)
        return replace(answer, run_id=run.id)

    def _observe(
        self, request: ChatRequest, answer: Answer, provider: str, model: str, cost: float
    ) -> None:
        status = "cached" if answer.cached else "ok"
        metrics.LLM_REQUESTS.labels(provider, model, status).inc()
        metrics.LLM_DURATION.labels(provider, model, status).observe(request.elapsed_ms() / 1000)
        if answer.cached:
            return
        metrics.LLM_TOKENS.labels(provider, model, "prompt").inc(answer.usage.prompt_tokens)
        metrics.LLM_TOKENS.labels(provider, model, "completion").inc(answer.usage.completion_tokens)
        metrics.LLM_COST.labels(provider, model).inc(cost)
        if answer.ttft_ms is not None:
            metrics.LLM_TTFT.labels(provider, model).observe(answer.ttft_ms / 1000)

    async def record_failure(
        self, request: ChatRequest, passages: Sequence[Passage], failed: GenerationFailedError
    ) -> None:
        error = failed.error
        provider, _, model = (failed.attempts[-1] if failed.attempts else "none/none").partition(
            "/"
        )
        status = "timeout" if error.status == 504 else "error"
        metrics.LLM_REQUESTS.labels(provider, model, status).inc()
        metrics.LLM_DURATION.labels(provider, model, status).observe(request.elapsed_ms() / 1000)
        try:
            async with self.sessionmaker() as session, session.begin():
                await RunService(session, self.tenant_id).record(
                    provider=provider,
                    model=model,
                    status=status,
                    output=failed.partial or None,
                    error=str(error)[:MAX_ERROR_CHARS],
                    metadata={
                        "origin": ORIGIN,
                        "requested_model": request.model.name,
                        "attempts": list(failed.attempts),
                        "upstream_status": error.upstream_status,
                    },
                    **run_fields(request, passages),
                )
        except Exception as exc:  # noqa: BLE001 - recording must not hide the provider's error
            log.error("could not record failed run", error=str(exc)[:300])
