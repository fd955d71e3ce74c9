"""How the peers are set up beside MyAIServ: an index per way they run, the very ONNX file
MyAIServ's embedder loads, and the threads MyAIServ gives each backend."""

from __future__ import annotations

from pathlib import Path

from bench.against_peers import (
    DEFAULT,
    ONNX,
    Variant,
    backend_config,
    embedding_threads,
    peer_index,
)
from myaiserv.config import load_settings
from myaiserv.embeddings import onnx
from myaiserv.embeddings.cores import cores
from myaiserv.embeddings.model import Embedder, resolve_model_path


def test_every_way_a_peer_runs_has_an_index_of_its_own() -> None:
    assert peer_index("langchain") == peer_index("langchain", DEFAULT) == "benchpeers-langchain"
    assert peer_index("haystack", ONNX) == "benchpeers-haystack-onnx-int8"
    analyzer = Variant("_best_analyzer", "torch", "stop", timed=False)
    assert peer_index("haystack", analyzer) == "benchpeers-haystack-best-analyzer"


def test_the_peers_get_the_threads_myaiserv_gives_each_backend() -> None:
    default = load_settings()
    assert default.embedding.threads == 0
    assert embedding_threads(default, "onnx-int8") == cores()  # one text per core
    assert embedding_threads(default, "torch") == 0  # torch's own default, on both sides
    three = load_settings(embedding={"threads": 3})
    assert embedding_threads(three, "onnx-int8") == embedding_threads(three, "torch") == 3


def test_on_onnx_int8_the_peers_load_the_file_myaiserv_loads() -> None:
    settings = load_settings(embedding={"backend": "onnx-int8"})
    embedder = Embedder.from_settings(settings.embedding)
    cfg = backend_config(settings, "onnx-int8")
    # Where Embedder.load finds (or exports) the file it runs.
    model = resolve_model_path(settings.embedding.model)
    loaded = onnx.exported_path(
        model, embedder.model_id, "onnx-int8", settings.embedding.onnx_cache_dir
    )
    assert cfg["onnx_file"] == str(loaded) and loaded.is_file()
    assert cfg["backend"] == "onnx-int8" and cfg["threads"] == cores()
    assert cfg["model"] == model and Path(model, "modules.json").is_file()
    assert "onnx_file" not in backend_config(settings, "torch")
