"""The ONNX backends at run time, without torch: the same vectors and token counts as
sentence-transformers running the same ONNX file (``reference.py``, the path they replaced),
on CISI's texts; the pooling and lowercasing the model folder declares; and a process in
which torch and sentence-transformers cannot be imported loads, encodes and counts, or,
with no exported file, says that exporting needs torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from myaiserv.datasets.trec import load_collection
from myaiserv.embeddings import onnx
from myaiserv.embeddings.model import DEFAULT_ONNX_CACHE, Embedder, resolve_model_path
from myaiserv.embeddings.runtime import OnnxEncoder, read_pipeline
from tests.unit.embeddings import reference

ROOT = Path(__file__).resolve().parents[3]
CISI = ROOT.parent / "shared" / "data" / "cisi"
if not CISI.is_dir():  # a worktree beside the main checkout
    CISI = Path("/work/shared/data/cisi")
MODEL_DIR = resolve_model_path("all-MiniLM-L6-v2")
BACKENDS = ("onnx", "onnx-int8")
POOLING_KEYS = {
    "mean": "pooling_mode_mean_tokens",
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
}
SHORT = ["", " ", "a", "Libraries", "what is a thesaurus?", "ÉCOLE des Chartes, Paris"]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """200 CISI abstracts (many past the model's 256 tokens), their titles, and a few
    very short texts."""
    docs = load_collection(CISI).documents[:200]
    return [d.text for d in docs] + [d.title for d in docs[:40]] + SHORT


def exported(backend: str) -> Path:
    """The file in the default cache (exported once per machine)."""
    return onnx.ensure_exported(MODEL_DIR, "all-MiniLM-L6-v2", backend, DEFAULT_ONNX_CACHE)


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest) -> tuple[Embedder, Any]:
    backend = request.param
    embedder = Embedder(backend=backend)
    embedder.load()
    old = reference.sentence_transformer_on_onnx(MODEL_DIR, exported(backend))
    return embedder, old


def test_vectors_and_counts_are_sentence_transformers(
    pair: tuple[Embedder, Any], texts: list[str]
) -> None:
    embedder, old = pair
    counts = embedder.count_tokens(texts)
    assert max(counts) > 2 * old.max_seq_length and min(counts) == 0  # the sample's range
    assert counts == [
        len(ids) for ids in old.tokenizer(texts, add_special_tokens=False)["input_ids"]
    ]

    got, want = embedder.encode_sync(texts), reference.encode(old, texts)
    assert got.shape == want.shape == (len(texts), 384) and got.dtype == np.float32
    cosines = (got * want).sum(axis=1)
    assert cosines.min() >= 0.99999, f"min cosine {cosines.min()} at {texts[cosines.argmin()]!r}"
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    dims = getattr(old, "get_embedding_dimension", None) or old.get_sentence_embedding_dimension
    assert (embedder.info.dims, embedder.info.max_seq_length) == (dims(), old.max_seq_length)
    # A text's vector never depends on its batch or its neighbours.
    alone = np.stack([embedder.encode_sync([t])[0] for t in texts[::25]])
    assert np.array_equal(alone, got[::25])


def _variant(tmp_path: Path, pooling: str, *, cased_tokenizer: bool, lower_case: bool) -> Path:
    """The packaged model folder with another pooling mode, its tokenizer's own lowercasing
    off (``cased_tokenizer``), and sentence_bert_config's ``do_lower_case``."""
    folder = tmp_path / f"{pooling}-{cased_tokenizer}-{lower_case}"
    shutil.copytree(MODEL_DIR, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(Path(MODEL_DIR) / "model.safetensors")
    config = json.loads((folder / "1_Pooling" / "config.json").read_text())
    for key in [k for k in config if k.startswith("pooling_mode")]:
        config[key] = False
    config[POOLING_KEYS[pooling]] = True
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["normalizer"]["lowercase"] = not cased_tokenizer
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["do_lower_case"] = not cased_tokenizer
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    sbert = {"max_seq_length": 128, "do_lower_case": lower_case}
    (folder / "sentence_bert_config.json").write_text(json.dumps(sbert))
    return folder


@pytest.mark.parametrize(
    ("pooling", "cased_tokenizer", "lower_case"),
    [("cls", False, False), ("max", True, False), ("mean", True, True)],
)
def test_the_folder_declares_pooling_case_and_length(
    tmp_path: Path, texts: list[str], pooling: str, cased_tokenizer: bool, lower_case: bool
) -> None:
    """bge-small pools the CLS token; a cased tokenizer with do_lower_case lowercases; the
    window is sentence_bert_config's (128 here). The transformer's weights are the same, so
    the packaged model's int8 file serves every variant."""
    folder = _variant(tmp_path, pooling, cased_tokenizer=cased_tokenizer, lower_case=lower_case)
    sample = [*texts[:30], *SHORT, "CamelCase WORDS Should Matter"]
    encoder = OnnxEncoder(folder, exported("onnx-int8"))
    old = reference.sentence_transformer_on_onnx(str(folder), exported("onnx-int8"))
    assert (encoder.pipeline.pooling, encoder.max_seq_length, old.max_seq_length) == (
        pooling,
        128,
        128,
    )
    got, want = encoder.encode(sample, 16), reference.encode(old, sample, 16)
    assert (got * want).sum(axis=1).min() >= 0.99999
    counts = encoder.count_tokens(sample)
    assert counts == [
        len(ids) for ids in old.tokenizer(sample, add_special_tokens=False)["input_ids"]
    ]
    cased = encoder.encode(["CamelCase WORDS"], 1)[0] @ encoder.encode(["camelcase words"], 1)[0]
    assert (cased > 0.99999) == (lower_case or not cased_tokenizer)


def test_what_the_onnx_backends_cannot_reproduce_is_refused(tmp_path: Path) -> None:
    folder = _variant(tmp_path, "weightedmean", cased_tokenizer=False, lower_case=False)
    with pytest.raises(ValueError, match=r"pooling 'weightedmean'.*use the torch backend"):
        read_pipeline(folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(
        2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="Transformer -> Pooling -> Dense -> Normalize"):
        read_pipeline(folder)
    (folder / "modules.json").unlink()
    with pytest.raises(ValueError, match="not a sentence-transformers model"):
        read_pipeline(folder)


# Run in a fresh interpreter in which importing torch or sentence-transformers fails, as in
# an image that has neither.
WITHOUT_TORCH = """
import importlib.abc, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "sentence_transformers"):
            raise ImportError(f"No module named {name!r} (refused by the test)")
        return None

sys.meta_path.insert(0, Refuse())
from myaiserv.embeddings.model import Embedder

backend, cache, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
embedder = Embedder(backend=backend, onnx_cache_dir=cache)
try:
    info = embedder.load()
except RuntimeError as exc:
    print(exc)
    sys.exit(3)
print(json.dumps({
    "info": [info.model_id, info.dims, info.max_seq_length],
    "vectors": embedder.encode_sync(texts).tolist(),
    "counts": embedder.count_tokens(texts),
    "imported": sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers"}),
}))
"""


def _without_torch(
    backend: str, cache: Path | str, texts: list[str]
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, backend, str(cache), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_onnx_backends_run_without_torch(
    backend: str, texts: list[str], tmp_path: Path
) -> None:
    path = exported(backend)
    sample = texts[:20] + SHORT
    done = _without_torch(backend, path.parent, sample)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["imported"] == []
    embedder = Embedder(backend=backend)
    want = embedder.load()
    assert result["info"] == [want.model_id, want.dims, want.max_seq_length]
    assert np.array_equal(
        np.asarray(result["vectors"], dtype=np.float32), embedder.encode_sync(sample)
    )
    assert result["counts"] == embedder.count_tokens(sample)

    missing = _without_torch(backend, tmp_path, sample)
    assert missing.returncode == 3, missing.stderr[-3000:]
    message = missing.stdout.strip()
    assert f"the ONNX file for all-MiniLM-L6-v2 ({backend}) is not in {tmp_path}" in message
    assert "exporting it needs torch" in message and "install torch" in message
    assert path.name in message
    assert not list(tmp_path.iterdir())
