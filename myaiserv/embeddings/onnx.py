"""ONNX Runtime for the transformer of a sentence-transformers model.

The model's own weights are exported to ONNX on this machine (``torch.onnx``), once,
into a cache folder, and optionally quantized to int8 (dynamic, per channel). Nothing is
downloaded. Only the transformer's forward pass moves to ONNX Runtime: tokenization,
length sorting, pooling and normalization stay sentence-transformers' own, so the
vectors are the same model's.

Measured on CISI with all-MiniLM-L6-v2 (2-core VM; bench/REPORT.md has the run):
``onnx`` gives the torch vectors (cosine 1.0) at ~1.5x torch's throughput and a query in
~8 ms instead of ~15 ms; ``onnx-int8`` encodes about 3x faster than torch with the same
relevance (dense nDCG@10 0.432 both, mean cosine to the torch vectors 0.994), so
vectors of different backends can share an index. int8 is dynamic quantization, whose
activation scale is computed per run: each text runs alone (unpadded), so its vector is
a function of the text only, as with torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")
# Bump when the export changes in a way that changes the file (opset, quantization).
EXPORT_VERSION = 1
_OPSET = 17
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json")


def weights_digest(model_dir: str | Path) -> str:
    """A digest of the transformer's weights and config: the exported file's identity."""
    digest = hashlib.sha256(f"export-v{EXPORT_VERSION}".encode())
    folder = Path(model_dir)
    found = False
    for name in _WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            found = True
            digest.update(name.encode())
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    if not found:
        raise ValueError(f"no transformer weights ({', '.join(_WEIGHT_FILES)}) in {folder}")
    return digest.hexdigest()[:16]


def exported_path(
    model_dir: str | Path, model_id: str, backend: str, cache_dir: str | Path
) -> Path:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return Path(cache_dir).expanduser() / f"{slug}-{weights_digest(model_dir)}-{backend}.onnx"


def _input_names(model: Any) -> list[str]:
    names = list(model.tokenizer.model_input_names)
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in names]


def export(model: Any, target: Path, *, quantize: bool) -> None:
    """Exports ``model``'s transformer to ``target`` (atomically: concurrent exports of
    the same weights write identical files and the last rename wins)."""
    import torch

    module = model[0]
    hf = module.auto_model.eval()
    names = _input_names(model)

    class Forward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.hf(
                **dict(zip(names, inputs, strict=True))
            ).last_hidden_state
            return hidden

    sample = model.tokenizer(
        ["an example", "a slightly longer example text"], padding=True, return_tensors="pt"
    )
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        plain = Path(work) / "model.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python branches
            torch.onnx.export(
                Forward(),
                tuple(sample[n] for n in names),
                str(plain),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=_OPSET,
                dynamo=False,
            )
        result = plain
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            result = Path(work) / "model-int8.onnx"
            # Per-channel weights keep the vectors within ~0.6% (cosine) of float32;
            # per-tensor int8 lost 0.017 nDCG@10 on CISI.
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its advice to pre-process goes to the root logger
            try:
                quantize_dynamic(plain, result, weight_type=QuantType.QInt8, per_channel=True)
            finally:
                root.setLevel(level)
        os.replace(result, target)


def session(path: Path) -> Any:
    """One session per process. Each run uses one thread: ``attach`` runs a batch's texts
    side by side (``Run`` is thread-safe), which keeps every core busy."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def attach(
    model: Any, model_dir: str, model_id: str, backend: str, cache_dir: str, threads: int
) -> Path:
    """Runs ``model``'s transformer on ONNX Runtime from now on; exports it first if the
    cache has no file for these weights. Returns the ONNX file used.

    Each text runs alone, unpadded: int8's activation scale is then the text's own, so
    its vector never depends on the texts batched beside it, and no compute goes to
    padding. A batch's texts run side by side, ``threads`` at a time (0: one per core),
    each on one thread: a single short sequence's matrices are too small to share out
    among cores, whole texts are not (measured on CISI chunks, 2 cores: 90-100 chunks/s
    against 64-68 with every text on both cores; a query takes ~4 ms either way)."""
    import torch

    path = exported_path(model_dir, model_id, backend, cache_dir)
    if not path.is_file():
        log.info("exporting embedding model to ONNX", extra={"path": str(path), "backend": backend})
        export(model, path, quantize=backend == "onnx-int8")
    width = threads or cores()
    runner = session(path)
    pool = ThreadPoolExecutor(width, thread_name_prefix="onnx") if width > 1 else None
    names = _input_names(model)
    module = model[0]
    output = getattr(module, "module_output_name", "token_embeddings")
    dims = module.auto_model.config.hidden_size

    def forward(features: dict[str, Any], **_: Any) -> dict[str, Any]:
        feed = {n: features[n].numpy().astype("int64", copy=False) for n in names}
        mask = feed["attention_mask"]
        hidden = np.zeros((*mask.shape, dims), dtype=np.float32)

        def run(i: int) -> None:
            tokens = np.flatnonzero(mask[i])  # wherever the tokenizer put the padding
            one = {k: v[i : i + 1, tokens] for k, v in feed.items()}
            (row,) = runner.run(["last_hidden_state"], one)
            hidden[i, tokens] = row[0]  # padding positions stay 0: pooling masks them out

        if pool is None or len(mask) == 1:
            for i in range(len(mask)):
                run(i)
        else:
            list(pool.map(run, range(len(mask))))
        features[output] = torch.from_numpy(hidden)
        return features

    module.forward = forward
    return path
