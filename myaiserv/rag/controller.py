"""The OpenAI-compatible API (``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings``)
and the native ``/v1/rag/answer``. Shapes on the wire are in ``wire``; these handlers
parse, authorise, call the service and shape."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Stream

from myaiserv.auth.middleware import requires
from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import GenerationParams
from myaiserv.problems import exception_handlers as app_exception_handlers
from myaiserv.rag import wire
from myaiserv.rag.deps import provide_embedding_service, provide_rag_service
from myaiserv.rag.embeddings import EmbeddingService
from myaiserv.rag.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageIn,
    EmbeddingList,
    EmbeddingsRequest,
    ModelList,
    RagAnswer,
    RagAnswerRequest,
)
from myaiserv.rag.service import RagService
from myaiserv.resources import Resources


async def answer_question(service: RagService, data: RagAnswerRequest) -> RagAnswer:
    """One question answered, as ``POST /v1/rag/answer`` and the MCP ``answer`` tool
    give it."""
    if data.max_tokens is not None and data.max_tokens < 1:
        raise InvalidInputError("max_tokens", "must be at least 1")
    request = await service.prepare(
        model=data.model,
        messages=[ChatMessageIn(role="user", content=data.question)],
        params=GenerationParams(temperature=data.temperature, max_tokens=data.max_tokens),
        retrieval=data.retrieval,
        prompt=data.prompt,
        conversation_id=data.conversation_id,
    )
    return wire.rag_answer(await service.complete(request), request)


class OpenAIController(Controller):
    path = "/v1"
    tags = ["openai"]  # noqa: RUF012
    dependencies = {  # noqa: RUF012
        "service": Provide(provide_rag_service, sync_to_thread=False),
        "embeddings": Provide(provide_embedding_service, sync_to_thread=False),
    }
    # Every class the app maps (handlers are looked up by the exception's class first,
    # across layers), so each of them gets OpenAI's error body on these routes.
    exception_handlers = dict.fromkeys(app_exception_handlers, wire.handle_exception)

    @post(
        "/chat/completions",
        guards=[requires("write")],
        status_code=200,
        responses={
            200: ResponseSpec(ChatCompletion, description="The answer", generate_examples=False)
        },
    )
    async def chat_completions(
        self, data: ChatCompletionRequest, service: NamedDependency[RagService]
    ) -> Response[Any]:
        """OpenAI-compatible chat completions, grounded in the tenant's knowledge base for
        knowledge-base models (or with the ``retrieval`` extension). The answer cites its
        sources as ``[n]``; ``citations`` lists them (streamed: in a chunk of their own
        before ``[DONE]``). Extensions: ``retrieval`` {enabled, kinds, filters, mode, k},
        ``prompt`` {name, label, version, variables}, ``conversation_id``."""
        request = await service.prepare(
            model=data.model,
            messages=data.messages,
            params=wire.generation_params(data),
            retrieval=data.retrieval,
            prompt=data.prompt,
            conversation_id=data.conversation_id,
        )
        envelope = wire.CompletionEnvelope(request)
        if not data.stream:
            return Response(envelope.body(await service.complete(request)))
        return Stream(
            envelope.events(service.stream(request)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    @get("/models", guards=[requires("read")])
    async def models(self, resources: NamedDependency[Resources]) -> ModelList:
        """The knowledge-base aliases (retrieval on), every provider model, and every
        embedding model installed here (the configured one first)."""
        return wire.model_list(resources.llm.model_names(), resources.embedders.installed())

    @post("/embeddings", guards=[requires("read")], status_code=200)
    async def embeddings(
        self, data: EmbeddingsRequest, embeddings: NamedDependency[EmbeddingService]
    ) -> EmbeddingList:
        """OpenAI-compatible embeddings from a local model: the configured one (the
        indexers' by default), or any installed one named by ``model`` (float or base64
        encoding; a string or a list of strings)."""
        return await embeddings.embed(data)


class RagController(Controller):
    path = "/v1/rag"
    tags = ["rag"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_rag_service, sync_to_thread=False)}  # noqa: RUF012

    @post("/answer", guards=[requires("write")], status_code=200)
    async def answer(
        self, data: RagAnswerRequest, service: NamedDependency[RagService]
    ) -> RagAnswer:
        """One question: the answer, its citations, the passages given to the model, the
        retrieval trace (each hit's rank and score in the bm25 and vector lists and the
        fused score) and the prompt version used."""
        return await answer_question(service, data)
