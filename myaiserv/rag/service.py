"""Retrieval-augmented answers: retrieve, build the prompt, call a provider (failing over
between an alias's targets), cite, remember, record.

One call:
1. resolve the model (alias or provider model) and check the messages;
2. rate limit per tenant (Redis; Redis down lets calls through);
3. the answer cache (identical request, same prompt version, same index generations);
4. retrieval through the search service (tenant filter inside Elasticsearch), passages
   numbered ``[1]``.. within a token budget;
5. the system prompt: a stored template by name and label (or a pinned version) rendered
   with ``{context}`` and ``{question}``, or the built-in one; earlier turns of the
   conversation, newest first within a token budget;
6. the provider call (streamed or not); failover to the next target only before the
   first token reached the client;
7. citations: the ``[n]`` markers of the answer that name a passage;
8. one transaction: the run (tokens, latency, time to first token, cost, status, retrieved
   and cited chunk ids, prompt version) and, with ``conversation_id``, the new user and
   assistant messages; both reach the index through the outbox.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from redis.exceptions import RedisError

from myaiserv import metrics
from myaiserv.auth.ratelimit import count_in_window
from myaiserv.conversations.service import ConversationService, NewMessage
from myaiserv.errors import AppError, NotFoundError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import (
    ChatMessage,
    Completion,
    Delta,
    GenerationParams,
    Passage,
    ProviderError,
    Usage,
)
from myaiserv.llm.registry import ResolvedModel, Target
from myaiserv.logging import get_logger
from myaiserv.prompts.service import PromptService
from myaiserv.prompts.template import TemplateError, render, variables_of
from myaiserv.quotas.service import ORIGIN as QUOTA_ORIGIN
from myaiserv.quotas.service import QuotaService
from myaiserv.rag.schemas import ChatMessageIn, PromptOptions, RetrievalOptions
from myaiserv.resources import Resources
from myaiserv.runs.service import RunService
from myaiserv.search.cache import ResultCache
from myaiserv.search.schemas import SearchRequest
from myaiserv.search.service import SearchService

log = get_logger(__name__)

BUILTIN_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the user's question using only the numbered "
    "sources below, and cite each source you use with its number in square brackets, "
    "like [1]. If the sources do not contain the answer, say that you do not know.\n\n"
    "Sources:\n{context}"
)
NO_RETRIEVAL_SYSTEM_PROMPT = "You are a helpful assistant."
ROLES = ("system", "user", "assistant")
TEXT_FIELD = {
    "documents": "text",
    "conversations": "content",
    "prompts": "template",
    "runs": "output",
}
_MARKER = re.compile(r"\[(\d{1,3})\]")
MAX_INPUT_CHARS_PER_TOKEN = 8  # refuse without tokenizing what cannot possibly fit


class ModelNotFoundError(NotFoundError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"model {name!r} does not exist; available: {', '.join(known)}",
            extra={"field": "model", "code": "model_not_found"},
        )


class NotSupportedError(AppError):
    status_code = 400
    title = "Not supported"

    def __init__(self, field_: str, message: str) -> None:
        super().__init__(
            f"{field_}: {message}", extra={"field": field_, "code": "unsupported_parameter"}
        )


class ContextTooLongError(AppError):
    status_code = 400
    title = "Context too long"

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(
            f"the messages need about {tokens} tokens; this model accepts at most {limit}",
            extra={"field": "messages", "code": "context_length_exceeded"},
        )


class RateLimitedError(AppError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "rate limit reached for this tenant; retry later",
            extra={"code": "rate_limit_exceeded"},
            headers={"Retry-After": str(retry_after_s)},
        )


class ProviderFailedError(AppError):
    """The provider (every target) failed: its status (429, 502, 503, 504) to the client."""

    title = "Provider error"

    def __init__(self, error: ProviderError) -> None:
        headers = {}
        if error.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
        super().__init__(
            f"the model provider failed: {error}",
            extra={"code": "provider_error", "provider": error.provider},
            headers=headers,
        )
        self.status_code = error.status
        self.error = error


@dataclass
class Prepared:
    resolved: ResolvedModel
    question: str
    client_messages: list[ChatMessage]
    params: GenerationParams
    retrieval: bool
    retrieval_options: RetrievalOptions
    prompt_options: PromptOptions
    conversation_id: UUID | None
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    messages: list[ChatMessage] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    trace: dict[str, Any] = field(default_factory=dict)
    prompt_version_id: UUID | None = None
    prompt_ref: dict[str, Any] | None = None
    template: str | None = None
    cache_key: str | None = None


@dataclass
class Answer:
    text: str
    finish_reason: str
    usage: Usage
    target: str  # provider/model
    citations: list[dict[str, Any]]
    cached: bool = False
    ttft_ms: float | None = None
    run_id: UUID | None = None
    attempts: list[str] = field(default_factory=list)


def _content_text(message: ChatMessageIn, i: int) -> str:
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


def citations_of(text: str, passages: list[Passage]) -> list[dict[str, Any]]:
    by_n = {p.n: p for p in passages}
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if n in by_n and n not in seen:
            seen.add(n)
            p = by_n[n]
            out.append(
                {
                    "index": n,
                    "chunk_id": p.chunk_id,
                    "document_id": p.document_id,
                    "title": p.title,
                    "source": p.source,
                    "score": p.score,
                    "text": p.text,
                    "char_start": p.char_start,
                    "char_end": p.char_end,
                }
            )
    return out


class RagService:
    def __init__(self, resources: Resources, tenant_id: UUID) -> None:
        self.resources = resources
        self.settings = resources.settings.llm
        self.tenant_id = tenant_id
        self.answers = ResultCache(
            resources.redis,
            resources.settings.es.index_prefix,
            self.settings.answer_cache_ttl_s,
            namespace="answers",
        )

    # -- preparing ----------------------------------------------------------------------

    def resolve(self, name: str | None) -> ResolvedModel:
        name = name or self.settings.default_model
        resolved = self.resources.llm.resolve(name)
        if resolved is None or not resolved.targets:
            known = [n for n, _, _ in self.resources.llm.model_names()]
            raise ModelNotFoundError(name, known)
        return resolved

    def check_messages(self, messages: list[ChatMessageIn]) -> tuple[list[ChatMessage], str]:
        if not messages:
            raise InvalidInputError("messages", "give at least one message")
        out = []
        for i, m in enumerate(messages):
            if m.role in ("tool", "function") or m.tool_calls:
                raise NotSupportedError(f"messages[{i}].role", "tool calls are not supported")
            if m.role not in ROLES:
                raise InvalidInputError(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}")
            out.append(ChatMessage(m.role, _content_text(m, i)))
        question = next((m.content for m in reversed(out) if m.role == "user"), None)
        if question is None:
            raise InvalidInputError("messages", "give at least one user message")
        chars = sum(len(m.content) for m in out)
        limit = self.settings.max_input_tokens
        if chars > limit * MAX_INPUT_CHARS_PER_TOKEN:
            raise ContextTooLongError(chars // MAX_INPUT_CHARS_PER_TOKEN, limit)
        return out, question

    def _tokens(self, texts: list[str]) -> int:
        return sum(self.resources.embedder.embedder.count_tokens(texts)) if texts else 0

    async def check_rate(self) -> None:
        limit = self.settings.rate_limit_per_minute
        if not limit:
            return
        name = f"{self.resources.settings.es.index_prefix}:rl:chat:{self.tenant_id}"
        try:
            (count,), reset = await count_in_window(self.resources.redis, [name])
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable", error=str(exc))
            return
        if count > limit:
            raise RateLimitedError(reset)

    async def prepare(
        self,
        *,
        model: str | None,
        messages: list[ChatMessageIn],
        params: GenerationParams,
        retrieval: RetrievalOptions | None,
        prompt: PromptOptions | None,
        conversation_id: str | None,
    ) -> Prepared:
        resolved = self.resolve(model)
        client_messages, question = self.check_messages(messages)
        options = retrieval or RetrievalOptions()
        if options.k is not None and not 1 <= options.k <= 50:
            raise InvalidInputError("retrieval.k", "must be between 1 and 50")
        conv_id = None
        if conversation_id is not None:
            try:
                conv_id = UUID(conversation_id)
            except ValueError:
                raise InvalidInputError("conversation_id", "must be a UUID") from None
        prepared = Prepared(
            resolved=resolved,
            question=question,
            client_messages=client_messages,
            params=params,
            retrieval=options.enabled if options.enabled is not None else resolved.retrieval,
            retrieval_options=options,
            prompt_options=prompt or PromptOptions(),
            conversation_id=conv_id,
        )
        if prepared.retrieval:
            self._plan_retrieval(prepared)  # bad retrieval options fail here, not mid-stream
        await self.check_rate()
        await QuotaService(self.resources, self.tenant_id).check()
        await self._resolve_prompt(prepared)  # so does a missing prompt version
        if conv_id is not None:  # and another tenant's (or no) conversation: 404
            async with self.resources.sessionmaker() as session:
                await ConversationService(session, self.tenant_id).get(conv_id)
        return prepared

    async def _resolve_prompt(self, p: Prepared) -> None:
        """The stored template (by name, pinned version or label), else the built-in;
        resolved before the answer cache is consulted: the version is part of its key."""
        opts = p.prompt_options
        name = opts.name or self.settings.system_prompt
        label = None if opts.version else (opts.label or self.settings.system_prompt_label)
        async with self.resources.sessionmaker() as session:
            service = PromptService(session, self.tenant_id)
            try:
                version = await service.resolve(name, label=label, version=opts.version)
            except NotFoundError:
                if opts.name or opts.version or opts.label:
                    raise  # asked for explicitly: say it is missing
                version = None
            if version is not None:
                p.prompt_version_id = version.id
                p.prompt_ref = {
                    "name": version.prompt.name,
                    "version": version.number,
                    "id": str(version.id),
                }
                p.template = version.template
            else:
                p.template = BUILTIN_SYSTEM_PROMPT if p.retrieval else NO_RETRIEVAL_SYSTEM_PROMPT

    def _system_prompt(self, p: Prepared) -> str:
        template = p.template or BUILTIN_SYSTEM_PROMPT
        used = set(variables_of(template))
        values = {**p.prompt_options.variables}
        if "context" in used:
            values["context"] = self._context(p.passages)
        if "question" in used:
            values["question"] = p.question
        try:
            return render(template, values)
        except TemplateError as exc:
            where, message = exc.problems[0]
            raise InvalidInputError(f"prompt.{where}", message) from None

    @staticmethod
    def _context(passages: list[Passage]) -> str:
        if not passages:
            return "(no sources found)"
        blocks = []
        for p in passages:
            head = f"[{p.n}]"
            if p.title:
                head += f" {p.title}"
            if p.source:
                head += f" ({p.source})"
            blocks.append(f"{head}\n{p.text}")
        return "\n\n".join(blocks)

    def _search_request(self, p: Prepared) -> SearchRequest:
        opts = p.retrieval_options
        kinds = opts.kinds or ["documents"]
        k = opts.k or self.settings.retrieval_k
        return SearchRequest(
            query=p.question[: self.resources.settings.search.max_query_chars],
            kinds=kinds,
            mode=opts.mode,
            filters=opts.filters,
            size=k,
            fields=sorted(
                {TEXT_FIELD[kind] for kind in kinds if kind in TEXT_FIELD}
                | ({"char_start", "char_end"} if "documents" in kinds else set())
            ),
            highlight=False,
        )

    def _plan_retrieval(self, p: Prepared) -> None:
        try:
            SearchService(self.resources, self.tenant_id).plan(self._search_request(p))
        except InvalidInputError as exc:
            message = str(exc.detail).split(": ", 1)[-1]
            raise InvalidInputError(f"retrieval.{exc.field}", message) from None

    async def _retrieve(self, p: Prepared) -> None:
        opts = p.retrieval_options
        kinds = opts.kinds or ["documents"]
        request = self._search_request(p)
        found = await SearchService(self.resources, self.tenant_id).retrieve(request)
        budget = self.settings.context_token_budget
        used = 0
        for hit in found.hits:
            text = str(hit.fields.get(TEXT_FIELD.get(hit.kind, "text")) or "")
            if not text.strip():
                continue
            tokens = self._tokens([text])
            if p.passages and used + tokens > budget:
                break
            used += tokens
            p.passages.append(
                Passage(
                    n=len(p.passages) + 1,
                    chunk_id=hit.id,
                    document_id=str(hit.fields.get("document_id") or hit.id),
                    title=hit.fields.get("title") or hit.fields.get("name"),
                    source=hit.fields.get("source"),
                    text=text,
                    score=hit.score,
                    kind=hit.kind,
                    char_start=hit.fields.get("char_start"),
                    char_end=hit.fields.get("char_end"),
                )
            )
        p.trace = {
            "mode": opts.mode,
            "kinds": kinds,
            "hits": [
                {"id": h.id, "kind": h.kind, "score": h.score, "ranks": h.ranks, "scores": h.scores}
                for h in found.hits
            ],
        }

    async def _history(self, p: Prepared) -> list[ChatMessage]:
        if p.conversation_id is None:
            return []
        async with self.resources.sessionmaker() as session:
            rows = await ConversationService(session, self.tenant_id).history(
                p.conversation_id, limit=200
            )
        budget = self.settings.history_token_budget
        kept: list[ChatMessage] = []
        used = 0
        for row in rows:  # newest first
            if row.role not in ("user", "assistant"):
                continue
            tokens = self._tokens([row.content])
            if used + tokens > budget:
                break
            used += tokens
            kept.append(ChatMessage(row.role, row.content))
        return list(reversed(kept))

    async def build(self, p: Prepared) -> None:
        """Retrieval, system prompt, history: the messages the provider gets."""
        if p.retrieval:
            await self._retrieve(p)
        system = self._system_prompt(p)
        history = await self._history(p)
        p.messages = [ChatMessage("system", system), *history, *p.client_messages]
        tokens = self._tokens([m.content for m in p.messages])
        if tokens > self.settings.max_input_tokens:
            raise ContextTooLongError(tokens, self.settings.max_input_tokens)

    # -- the answer cache -----------------------------------------------------------------

    async def cache_key(self, p: Prepared) -> str | None:
        """Identical requests only: same tenant, model, prompt version, retrieval
        parameters and messages, at the same index generations. Conversations are never
        cached (their history moves on)."""
        if not self.settings.answer_cache_ttl_s or p.conversation_id is not None:
            return None
        material = {
            "model": p.resolved.name,
            "targets": [t.label for t in p.resolved.targets],
            "prompt": str(p.prompt_version_id),
            "prompt_options": msgspec.to_builtins(p.prompt_options),
            "retrieval": p.retrieval,
            "retrieval_options": msgspec.to_builtins(p.retrieval_options),
            "params": p.params.__dict__,
            "messages": [[m.role, " ".join(m.content.split())] for m in p.client_messages],
        }
        digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode())
        kinds = (p.retrieval_options.kinds or ["documents"]) if p.retrieval else ["prompts"]
        return await self.answers.key(str(self.tenant_id), kinds, digest.hexdigest()[:32])

    async def cached_answer(self, p: Prepared) -> Answer | None:
        p.cache_key = await self.cache_key(p)
        if p.cache_key is None:
            return None
        raw = await self.answers.get(p.cache_key)
        metrics.CACHE_REQUESTS.labels("answers", "miss" if raw is None else "hit").inc()
        if raw is None:
            return None
        data = json.loads(raw)
        p.passages = [Passage(**x) for x in data.get("passages", [])]
        return Answer(
            text=data["text"],
            finish_reason=data["finish_reason"],
            usage=Usage(**data["usage"]),
            target=data["target"],
            citations=data["citations"],
            cached=True,
        )

    async def _remember(self, p: Prepared, answer: Answer) -> None:
        if p.cache_key is None or answer.cached or answer.finish_reason not in ("stop", "length"):
            return
        data = {
            "text": answer.text,
            "finish_reason": answer.finish_reason,
            "usage": {
                "prompt_tokens": answer.usage.prompt_tokens,
                "completion_tokens": answer.usage.completion_tokens,
            },
            "target": answer.target,
            "citations": answer.citations,
            "passages": [x.__dict__ for x in p.passages],
        }
        await self.answers.put(p.cache_key, json.dumps(data).encode())

    # -- answering ------------------------------------------------------------------------

    def _usage(self, p: Prepared, completion: Completion) -> Usage:
        """The provider's count, or our tokenizer's estimate when it reports none."""
        usage = completion.usage
        if not usage.prompt_tokens:
            usage.prompt_tokens = self._tokens([m.content for m in p.messages])
        if not usage.completion_tokens and completion.text:
            usage.completion_tokens = self._tokens([completion.text])
        return usage

    def _finish(self, p: Prepared, target: Target, completion: Completion) -> Answer:
        return Answer(
            text=completion.text,
            finish_reason=completion.finish_reason,
            usage=self._usage(p, completion),
            target=target.label,
            citations=citations_of(completion.text, p.passages),
        )

    async def complete(self, p: Prepared) -> Answer:
        cached = await self.cached_answer(p)
        if cached is not None:
            return await self.record(p, cached)
        await self.build(p)
        attempts: list[str] = []
        last: ProviderError | None = None
        for target in p.resolved.targets:
            attempts.append(target.label)
            try:
                completion = await target.provider.complete(
                    target.model, p.messages, p.params, p.passages
                )
            except ProviderError as exc:
                last = exc
                log.warning("provider failed", target=target.label, error=str(exc))
                if not exc.failover:
                    break
                continue
            answer = self._finish(p, target, completion)
            answer.attempts = attempts
            answer.ttft_ms = (time.perf_counter() - p.started) * 1000
            await self._remember(p, answer)
            return await self.record(p, answer)
        assert last is not None
        await self.record_failure(p, last, attempts)
        raise ProviderFailedError(last)

    async def stream(self, p: Prepared) -> AsyncIterator[Delta | Answer]:
        """Deltas, then the recorded ``Answer``. Failover happens only before the first
        delta; a failure after it ends the stream with the error (recorded)."""
        cached = await self.cached_answer(p)
        if cached is not None:
            for piece in re.findall(r"\S+\s*", cached.text):
                yield Delta(text=piece)
            yield await self.record(p, cached)
            return
        await self.build(p)
        attempts: list[str] = []
        last: ProviderError | None = None
        for target in p.resolved.targets:
            attempts.append(target.label)
            parts: list[str] = []
            finish: str | None = None
            usage: Usage | None = None
            ttft: float | None = None
            try:
                async for delta in target.provider.stream(
                    target.model, p.messages, p.params, p.passages
                ):
                    if delta.text:
                        if ttft is None:
                            ttft = (time.perf_counter() - p.started) * 1000
                        parts.append(delta.text)
                        yield delta
                    if delta.finish_reason:
                        finish = delta.finish_reason
                    if delta.usage:
                        usage = delta.usage
            except ProviderError as exc:
                last = exc
                log.warning("provider failed", target=target.label, error=str(exc))
                if parts or not exc.failover:
                    await self.record_failure(p, exc, attempts, partial="".join(parts))
                    raise ProviderFailedError(exc) from exc
                continue
            completion = Completion("".join(parts), usage or Usage(), finish or "stop")
            answer = self._finish(p, target, completion)
            answer.attempts = attempts
            answer.ttft_ms = ttft
            await self._remember(p, answer)
            yield await self.record(p, answer)
            return
        assert last is not None
        await self.record_failure(p, last, attempts)
        raise ProviderFailedError(last)

    # -- recording ------------------------------------------------------------------------

    def _run_fields(self, p: Prepared) -> dict[str, Any]:
        return {
            "input": p.question,
            "prompt_version_id": p.prompt_version_id,
            "conversation_id": p.conversation_id,
            "retrieved_chunk_ids": [x.chunk_id for x in p.passages],
            "started_at": p.started_at,
            "finished_at": datetime.now(UTC),
            "latency_ms": round((time.perf_counter() - p.started) * 1000, 3),
        }

    def _target(self, label: str) -> Target | None:
        provider, _, model = label.partition("/")
        return self.resources.llm.target(provider, model)

    async def record(self, p: Prepared, answer: Answer) -> Answer:
        provider, _, model = answer.target.partition("/")
        target = self._target(answer.target)
        cost = (
            0.0
            if answer.cached or target is None
            else target.cost_usd(answer.usage.prompt_tokens, answer.usage.completion_tokens)
        )
        async with self.resources.sessionmaker() as session, session.begin():
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
                    "origin": QUOTA_ORIGIN,
                    "requested_model": p.resolved.name,
                    "cached": answer.cached,
                    "retrieval": p.retrieval,
                    "finish_reason": answer.finish_reason,
                    "attempts": answer.attempts,
                },
                **self._run_fields(p),
            )
            if p.conversation_id is not None:
                await ConversationService(session, self.tenant_id).add_messages(
                    p.conversation_id,
                    [
                        NewMessage("user", p.question, token_count=self._tokens([p.question])),
                        NewMessage(
                            "assistant",
                            answer.text or "(empty answer)",
                            prompt_tokens=answer.usage.prompt_tokens,
                            completion_tokens=answer.usage.completion_tokens,
                            token_count=answer.usage.completion_tokens,
                        ),
                    ],
                )
        answer.run_id = run.id
        if not answer.cached:
            await QuotaService(self.resources, self.tenant_id).add(
                answer.usage.prompt_tokens + answer.usage.completion_tokens, cost
            )
        status = "cached" if answer.cached else "ok"
        metrics.LLM_REQUESTS.labels(provider, model, status).inc()
        metrics.LLM_DURATION.labels(provider, model, status).observe(
            time.perf_counter() - p.started
        )
        if not answer.cached:
            metrics.LLM_TOKENS.labels(provider, model, "prompt").inc(answer.usage.prompt_tokens)
            metrics.LLM_TOKENS.labels(provider, model, "completion").inc(
                answer.usage.completion_tokens
            )
            metrics.LLM_COST.labels(str(self.tenant_id), provider, model).inc(cost)
            if answer.ttft_ms is not None:
                metrics.LLM_TTFT.labels(provider, model).observe(answer.ttft_ms / 1000)
        return answer

    async def record_failure(
        self, p: Prepared, error: ProviderError, attempts: list[str], partial: str = ""
    ) -> None:
        provider, _, model = (attempts[-1] if attempts else "none/none").partition("/")
        status = "timeout" if error.status == 504 else "error"
        metrics.LLM_REQUESTS.labels(provider, model, status).inc()
        metrics.LLM_DURATION.labels(provider, model, status).observe(
            time.perf_counter() - p.started
        )
        try:
            async with self.resources.sessionmaker() as session, session.begin():
                await RunService(session, self.tenant_id).record(
                    provider=provider,
                    model=model,
                    status=status,
                    output=partial or None,
                    error=str(error)[:4000],
                    metadata={
                        "origin": QUOTA_ORIGIN,
                        "requested_model": p.resolved.name,
                        "attempts": attempts,
                        "upstream_status": error.upstream_status,
                    },
                    **self._run_fields(p),
                )
        except Exception as exc:  # recording must not hide the provider's error
            log.error("could not record failed run", error=str(exc)[:300])
