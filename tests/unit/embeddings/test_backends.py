"""The embedding backends: the ONNX file is exported from the local weights into the
cache once and reused; every backend gives the same model's vectors (float32 ONNX equal
to torch's, int8 close enough to share an index and rank alike), a text's vector never
depends on the texts batched beside it, and one call's texts are batched by length."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from myaiserv.config import EmbeddingSettings
from myaiserv.embeddings import onnx
from myaiserv.embeddings.model import Embedder, resolve_model_path

TEXTS = [
    "How do libraries classify scientific journals?",
    "Automatic indexing of documents by computer",
    "The cost of interlibrary loans in university libraries",
    "a",
    "word " * 300,  # longer than the model's window: truncated alike by every backend
]
DOCS = [
    "Citation analysis of physics journals and their impact factors.",
    "Computers assign subject headings to documents without human indexers.",
    "Loans between university libraries and what they cost per item.",
    "The history of the printing press in Europe.",
]


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    model = Embedder(backend="torch")
    model.load()
    return model


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)  # rows are L2-normalised


def test_float32_onnx_is_exported_once_and_gives_torch_vectors(
    tmp_path: Path, torch_embedder: Embedder
) -> None:
    first = Embedder(backend="onnx", onnx_cache_dir=str(tmp_path))
    first.load()
    files = list(tmp_path.glob("*.onnx"))
    assert [f.name for f in files] == [
        onnx.exported_path(
            resolve_model_path(first.model_name), first.model_id, "onnx", tmp_path
        ).name
    ]
    assert not list(tmp_path.glob(".export-*")), "the export's work folder is left behind"
    stamp = files[0].stat().st_mtime_ns

    second = Embedder(backend="onnx", onnx_cache_dir=str(tmp_path))
    second.load()
    assert files[0].stat().st_mtime_ns == stamp, "a second load exported again"

    got, want = second.encode_sync(TEXTS), torch_embedder.encode_sync(TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384)
    assert _cosines(got, want).min() > 0.9999
    assert second.info == torch_embedder.info
    # float32 has no per-batch quantization: a text's vector does not depend on its batch.
    assert np.allclose(second.encode_sync(TEXTS[:1])[0], got[0], atol=1e-5)


def test_int8_vectors_stay_close_to_torch_and_rank_alike(torch_embedder: Embedder) -> None:
    int8 = Embedder(backend="onnx-int8")  # the default cache: exported once per machine
    int8.load()
    got, want = int8.encode_sync(TEXTS), torch_embedder.encode_sync(TEXTS)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert _cosines(got, want).min() > 0.97
    # int8 activations are quantized per run and each text runs alone: its vector is the
    # same whatever it is batched with, in whatever order.
    alone = np.stack([int8.encode_sync([t])[0] for t in TEXTS])
    assert np.array_equal(alone, got)
    assert np.array_equal(int8.encode_sync([*DOCS, *TEXTS[::-1]])[len(DOCS) :], got[::-1])
    assert int8.vectors_id == f"{int8.model_id}+int8" != torch_embedder.vectors_id
    # Each query finds the same document first, whichever backend embedded either side.
    queries, docs = TEXTS[:3], DOCS
    for q, d in ((int8, int8), (int8, torch_embedder), (torch_embedder, int8)):
        scores = q.encode_sync(queries) @ d.encode_sync(docs).T
        assert list(scores.argmax(axis=1)) == [0, 1, 2]


class Recording(Embedder):
    """The real model, noting the batches ``encode`` hands it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[str]] = []

    def encode_sync(self, texts: Sequence[str], *, lease: bool = True) -> np.ndarray:
        self.batches.append(list(texts))
        return super().encode_sync(texts, lease=lease)


async def test_a_call_is_batched_longest_first_and_answered_in_its_own_order() -> None:
    model = Recording(backend="onnx-int8", batch_size=2)
    model.load()
    texts = [*TEXTS, *DOCS]
    try:
        got = await model.encode(texts)
        # Like lengths share a batch (a batch pads to its longest): across the whole call.
        lengths = [[len(t) for t in batch] for batch in model.batches]
        assert [n for batch in lengths for n in batch] == sorted(map(len, texts), reverse=True)
        assert all(len(batch) <= 2 for batch in lengths)
        # Each row is its own text's vector, in the caller's order.
        alone = np.stack([model.encode_sync([t])[0] for t in texts])
        assert np.array_equal(got, alone)
    finally:
        model.close()


def test_the_digest_follows_the_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    before = onnx.exported_path(tmp_path, "m", "onnx-int8", "/cache")
    (tmp_path / "model.safetensors").write_bytes(b"weights-2")
    after = onnx.exported_path(tmp_path, "m", "onnx-int8", "/cache")
    assert before != after and before.parent == after.parent == Path("/cache")
    assert onnx.exported_path(tmp_path, "m", "onnx", "/cache") != after
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no transformer weights"):
        onnx.weights_digest(empty)


def test_unknown_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        Embedder(backend="tensorrt")
    with pytest.raises(ValidationError, match="backend"):
        EmbeddingSettings(backend="tensorrt")
    settings = EmbeddingSettings(backend="torch", threads=1)
    embedder = Embedder.from_settings(settings)
    assert (embedder.backend, embedder.threads) == ("torch", 1)
    assert Embedder().backend == EmbeddingSettings().backend == "onnx-int8"
