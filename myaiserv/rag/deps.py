"""Building the RAG services for a request: the one place that knows which of the
process's clients and settings each piece gets."""

from __future__ import annotations

from myaiserv.auth.principal import Principal
from myaiserv.db.generations import GenerationReader
from myaiserv.quotas.service import QuotaService
from myaiserv.rag.answer_cache import AnswerCache
from myaiserv.rag.context import Retriever
from myaiserv.rag.embeddings import EmbeddingService
from myaiserv.rag.preparation import ChatRateLimit, Preparer
from myaiserv.rag.recording import Recorder
from myaiserv.rag.service import RagService
from myaiserv.resources import Resources
from myaiserv.search.cache import ResultCache
from myaiserv.search.deps import search_service


def provide_rag_service(resources: Resources, principal: Principal) -> RagService:
    settings = resources.settings
    llm = settings.llm
    tenant_id = principal.tenant_id
    namespace = settings.redis.namespace
    count_tokens = resources.embedder.embedder.count_tokens
    quotas = QuotaService(resources.redis, namespace, settings.quotas, tenant_id)
    retriever = Retriever(
        search_service(resources, tenant_id),
        default_k=llm.retrieval_k,
        max_query_chars=settings.search.max_query_chars,
        budget=llm.context_token_budget,
    )
    return RagService(
        preparer=Preparer(
            tenant_id=tenant_id,
            settings=llm,
            registry=resources.llm,
            retriever=retriever,
            rate_limit=ChatRateLimit(resources.redis, namespace, llm.rate_limit_per_minute),
            quotas=quotas,
            sessionmaker=resources.sessionmaker,
            count_tokens=count_tokens,
        ),
        retriever=retriever,
        cache=AnswerCache(
            ResultCache(
                resources.redis,
                GenerationReader(resources.engine),
                namespace,
                llm.answer_cache_ttl_s,
                namespace="answers",
            ),
            tenant_id,
        ),
        recorder=Recorder(
            tenant_id=tenant_id,
            sessionmaker=resources.sessionmaker,
            registry=resources.llm,
            quotas=quotas,
            count_tokens=count_tokens,
        ),
        count_tokens=count_tokens,
        max_input_tokens=llm.max_input_tokens,
    )


def provide_embedding_service(resources: Resources, principal: Principal) -> EmbeddingService:
    return EmbeddingService(
        resources.embedder.for_tenant(principal.tenant_id),
        resources.embedders,
        max_input_chars=resources.settings.embedding.max_input_chars,
    )
