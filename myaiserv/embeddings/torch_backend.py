"""sentence-transformers on torch: the ``torch`` backend, and the model the ONNX export
reads. Only imported where torch is wanted: the ONNX backends run without it."""

from __future__ import annotations

import copy
import os
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def load_model(path: str) -> SentenceTransformer:
    """The model folder as sentence-transformers loads it, offline, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Progress bars would break the one-JSON-object-per-line logs.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_TQDM", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)


class TorchEncoder:
    def __init__(self, path: str, threads: int = 0) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.width = torch.get_num_threads()
        self.model = load_model(path)
        get_dims = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        dims, max_seq_length = get_dims(), self.model.max_seq_length
        if dims is None or max_seq_length is None:
            raise RuntimeError(f"{path} does not say its dimension and input length")
        self.dims, self.max_seq_length = int(dims), int(max_seq_length)
        # Token counting has a tokenizer of its own: a fast tokenizer keeps its padding and
        # truncation settings in shared state, so counting on another thread while the
        # model encodes could leave the model's batch unpadded (a failed encode).
        self._counter = copy.deepcopy(self.model.tokenizer)
        self._counter_lock = threading.Lock()

    def count_tokens(self, texts: list[str]) -> list[int]:
        with self._counter_lock:
            encoded = self._counter(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(
        self,
        texts: list[str],
        batch_size: int,
        *,
        normalize_embeddings: bool = True,
        threads: int | None = None,
    ) -> np.ndarray:
        """As sentence-transformers encodes, on ``threads`` of torch's intra-op threads
        (None: as many as it started with)."""
        import torch

        wanted = min(threads or self.width, self.width)
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=normalize_embeddings,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
