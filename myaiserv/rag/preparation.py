"""Preparing a chat call: everything that can refuse it, before any work is spent on it.

In order: the model, the messages, the retrieval options (planned as the search would
be, so a bad filter fails here and not mid-stream), the tenant's chat rate limit and daily
quota, the system prompt (its version is part of the answer cache's key), and the
conversation (another tenant's, or none, is a 404). The database reads share one session;
nothing is written.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myaiserv.auth.ratelimit import count_sliding
from myaiserv.config import LLMSettings
from myaiserv.conversations.service import ConversationService
from myaiserv.errors import NotFoundError
from myaiserv.llm.base import ChatMessage, GenerationParams
from myaiserv.llm.registry import ProviderRegistry
from myaiserv.logging import get_logger
from myaiserv.prompts.service import PromptService
from myaiserv.quotas.service import QuotaService
from myaiserv.rag import context
from myaiserv.rag.context import Retriever, TokenCounter
from myaiserv.rag.errors import RateLimitedError
from myaiserv.rag.request import (
    ChatRequest,
    SystemPrompt,
    check_messages,
    check_retrieval,
    conversation_uuid,
    resolve_model,
)
from myaiserv.rag.schemas import ChatMessageIn, PromptOptions, RetrievalOptions

log = get_logger(__name__)
HISTORY_ROWS = 200  # the most earlier messages read; the token budget then decides


class ChatRateLimit:
    """Chat calls per tenant in any minute (a sliding window, see ``auth.ratelimit``),
    counted in Redis; Redis down lets calls through (the per-key API rate limit still
    applies)."""

    def __init__(self, redis: Redis, namespace: str, per_minute: int) -> None:
        self.redis = redis
        self.namespace = namespace
        self.per_minute = per_minute

    async def check(self, tenant_id: UUID) -> None:
        if not self.per_minute:
            return
        name = f"{self.namespace}:rl:chat:{tenant_id}"
        try:
            allowed, (window,) = await count_sliding(self.redis, [(name, self.per_minute)])
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable", error=str(exc))
            return
        if not allowed:
            raise RateLimitedError(window.verdict(False).reset_s)


class Preparer:
    def __init__(
        self,
        *,
        tenant_id: UUID,
        settings: LLMSettings,
        registry: ProviderRegistry,
        retriever: Retriever,
        rate_limit: ChatRateLimit,
        quotas: QuotaService,
        sessionmaker: async_sessionmaker[AsyncSession],
        count_tokens: TokenCounter,
    ) -> None:
        self.tenant_id = tenant_id
        self.settings = settings
        self.registry = registry
        self.retriever = retriever
        self.rate_limit = rate_limit
        self.quotas = quotas
        self.sessionmaker = sessionmaker
        self.count_tokens = count_tokens

    async def prepare(
        self,
        *,
        model: str | None,
        messages: list[ChatMessageIn],
        params: GenerationParams,
        retrieval: RetrievalOptions | None,
        prompt: PromptOptions | None,
        conversation_id: str | None,
    ) -> ChatRequest:
        resolved = resolve_model(self.registry, model or self.settings.default_model)
        client_messages, question = check_messages(messages, self.settings.max_input_tokens)
        options = check_retrieval(retrieval or RetrievalOptions())
        conv_id = conversation_uuid(conversation_id)
        retrieve = options.enabled if options.enabled is not None else resolved.retrieval
        search_plan = self.retriever.plan(question, options) if retrieve else None
        prompt_options = prompt or PromptOptions()
        await self.rate_limit.check(self.tenant_id)
        async with self.sessionmaker() as session:
            await self.quotas.check(session)
            system_prompt = await self._system_prompt(session, prompt_options, retrieve)
            history = await self._history(session, conv_id)
        return ChatRequest(
            model=resolved,
            question=question,
            messages=client_messages,
            params=params,
            retrieval=retrieve,
            retrieval_options=options,
            prompt_options=prompt_options,
            system_prompt=system_prompt,
            conversation_id=conv_id,
            history=history,
            search_plan=search_plan,
        )

    async def _system_prompt(
        self, session: AsyncSession, options: PromptOptions, retrieve: bool
    ) -> SystemPrompt:
        """The stored template (by name, pinned version or label), else the built-in."""
        name = options.name or self.settings.system_prompt
        label = None if options.version else (options.label or self.settings.system_prompt_label)
        try:
            version = await PromptService(session, self.tenant_id).resolve(
                name, label=label, version=options.version
            )
        except NotFoundError:
            if options.name or options.version or options.label:
                raise  # asked for explicitly: say it is missing
            if retrieve:
                return SystemPrompt(context.BUILTIN_SYSTEM_PROMPT)
            return SystemPrompt(context.NO_RETRIEVAL_SYSTEM_PROMPT)
        ref = {"name": version.prompt.name, "version": version.number, "id": str(version.id)}
        return SystemPrompt(version.template, version.id, ref)

    async def _history(
        self, session: AsyncSession, conversation_id: UUID | None
    ) -> tuple[ChatMessage, ...]:
        """Earlier turns within the history budget (404 for a conversation the tenant
        does not have)."""
        if conversation_id is None:
            return ()
        rows = await ConversationService(session, self.tenant_id).history(
            conversation_id, limit=HISTORY_ROWS
        )
        return await asyncio.to_thread(
            context.recent_turns,
            [(row.role, row.content) for row in rows],
            self.settings.history_token_budget,
            self.count_tokens,
        )
