"""``/v1/embeddings``: OpenAI-compatible embeddings from a local model: by default the
configured one, as the indexers use it, so a client's vectors are comparable with the
index's; ``model`` may name any other installed one (``/v1/models`` lists them).

A request is bounded before any work: at most ``MAX_EMBEDDING_INPUTS`` texts of at most
``max_input_chars`` each. Its texts queue behind searches' query embeddings (see
``embeddings/scheduler.py``), and counting their tokens runs off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np

from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.embeddings.registry import Embedders, ModelUnavailableError
from myaiserv.errors import DependencyUnavailableError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.rag.errors import ModelNotFoundError, NotSupportedError
from myaiserv.rag.schemas import Embedding, EmbeddingList, EmbeddingsRequest, EmbeddingUsage

MAX_EMBEDDING_INPUTS = 2048


def _texts(data: EmbeddingsRequest, max_chars: int) -> list[str]:
    inputs = [data.input] if isinstance(data.input, str) else data.input
    if not inputs:
        raise InvalidInputError("input", "give at least one text")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise InvalidInputError("input", f"at most {MAX_EMBEDDING_INPUTS} texts per request")
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise NotSupportedError(f"input[{i}]", "only strings are supported (not token arrays)")
        if not text or "\x00" in text:
            raise InvalidInputError(f"input[{i}]", "must be non-empty text without NUL")
        if len(text) > max_chars:
            raise InvalidInputError(
                f"input[{i}]", f"{len(text)} characters; at most {max_chars} per input"
            )
    return inputs


def _encoded(vector: Any, encoding_format: str) -> str | list[float]:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return [float(x) for x in vector]


class EmbeddingService:
    def __init__(
        self, embedder: CachedEmbedder, embedders: Embedders, *, max_input_chars: int
    ) -> None:
        self.embedder = embedder  # the configured model, with the tenant's cache
        self.embedders = embedders
        self.max_input_chars = max_input_chars

    async def embed(self, data: EmbeddingsRequest) -> EmbeddingList:
        """OpenAI's embeddings response for the request's texts."""
        installed = self.embedders.installed()
        if data.model is not None and data.model not in installed:
            raise ModelNotFoundError(data.model, installed)
        texts = _texts(data, self.max_input_chars)
        cached = self.embedder
        if data.model is not None:
            try:
                cached = cached.with_model(await self.embedders.get(data.model))
            except ModelUnavailableError as exc:
                raise DependencyUnavailableError("embeddings", str(exc)) from exc
        model = cached.embedder
        if data.dimensions not in (None, model.info.dims):
            raise NotSupportedError("dimensions", f"this model has {model.info.dims}")
        vectors = await cached.encode(texts)
        tokens = sum(await asyncio.to_thread(model.count_tokens, texts))
        items = [
            Embedding(object="embedding", index=i, embedding=_encoded(v, data.encoding_format))
            for i, v in enumerate(vectors)
        ]
        return EmbeddingList(
            object="list",
            data=items,
            model=model.model_id,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
