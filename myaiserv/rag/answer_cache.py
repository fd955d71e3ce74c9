"""The answer cache (Redis): an identical request at the same index generations replays
the answer instead of calling the provider again.

Identical means the same tenant, model and targets, prompt version and options, retrieval
switch and options, generation parameters and messages (whitespace-normalised). The key
holds the index generations of the kinds retrieval read (prompts' when retrieval is off:
the system prompt is one), so an answer is never replayed once the indexer has settled a
newer write. Conversations are never cached: their history moves on. Redis down means no
cache, never an error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any
from uuid import UUID

import msgspec

from myaiserv import metrics
from myaiserv.llm.base import Passage, Usage
from myaiserv.rag.context import Grounding, kinds_of
from myaiserv.rag.request import ChatRequest
from myaiserv.rag.result import Answer
from myaiserv.search.cache import ResultCache
from myaiserv.search.kinds import Kind

CACHEABLE_FINISH = ("stop", "length")  # a filtered or failed answer is not replayed


def material(request: ChatRequest) -> dict[str, Any]:
    """What makes two requests the same request."""
    return {
        "model": request.model.name,
        "targets": [t.label for t in request.model.targets],
        "prompt": str(request.system_prompt.version_id),
        "prompt_options": msgspec.to_builtins(request.prompt_options),
        "retrieval": request.retrieval,
        "retrieval_options": msgspec.to_builtins(request.retrieval_options),
        "params": asdict(request.params),
        "messages": [[m.role, " ".join(m.content.split())] for m in request.messages],
    }


def fingerprint(request: ChatRequest) -> str:
    encoded = json.dumps(material(request), sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def encode(answer: Answer) -> bytes:
    return json.dumps(
        {
            "text": answer.text,
            "finish_reason": answer.finish_reason,
            "usage": {
                "prompt_tokens": answer.usage.prompt_tokens,
                "completion_tokens": answer.usage.completion_tokens,
            },
            "target": answer.target,
            "citations": answer.citations,
            "passages": [asdict(p) for p in answer.grounding.passages],
        }
    ).encode()


def decode(raw: bytes) -> Answer:
    data = json.loads(raw)
    return Answer(
        text=data["text"],
        finish_reason=data["finish_reason"],
        usage=Usage(**data["usage"]),
        target=data["target"],
        citations=data["citations"],
        grounding=Grounding(tuple(Passage(**p) for p in data.get("passages", []))),
        cached=True,
    )


class AnswerCache:
    def __init__(self, pages: ResultCache, tenant_id: UUID) -> None:
        self.pages = pages
        self.ttl_s = pages.ttl_s
        self.tenant_id = str(tenant_id)

    async def key(self, request: ChatRequest) -> str | None:
        """The request's key at the current generations; None: not cacheable."""
        if not self.ttl_s or request.conversation_id is not None:
            return None
        kinds: list[Kind] = (
            kinds_of(request.retrieval_options) if request.retrieval else ["prompts"]
        )
        return await self.pages.key(self.tenant_id, kinds, fingerprint(request))

    async def get(self, key: str | None) -> Answer | None:
        if key is None:
            return None
        raw = await self.pages.get(key)
        metrics.CACHE_REQUESTS.labels("answers", "miss" if raw is None else "hit").inc()
        return None if raw is None else decode(raw)

    async def put(self, key: str | None, answer: Answer) -> None:
        if key is None or answer.cached or answer.finish_reason not in CACHEABLE_FINISH:
            return
        await self.pages.put(key, encode(answer))
