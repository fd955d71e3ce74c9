"""The ONNX backends' export: the transformer of a sentence-transformers model to ONNX.

The model's own weights are exported to ONNX on this machine (``torch.onnx``), once,
into a cache folder, and optionally quantized to int8 (dynamic, per channel). Nothing is
downloaded. This is the only part of the ONNX backends that needs torch and
sentence-transformers: a production image exports in its build stage and runs without
them. At run time ``runtime.py`` tokenizes, runs the file on ONNX Runtime and pools as
the model folder declares, so the vectors are the same model's.

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
from pathlib import Path
from typing import Any

from myaiserv.embeddings import catalog
from myaiserv.embeddings.quantize import int8

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
            result = Path(work) / "model-int8.onnx"
            int8(plain, result)
        os.replace(result, target)


def ensure_exported(model_dir: str, model_id: str, backend: str, cache_dir: str) -> Path:
    """The ONNX file for these weights, exported first if the cache has none. Exporting is
    the only step of the ONNX backends that needs torch and sentence-transformers; an
    installation without them (a production image) must be given the file. A catalog
    model's folder has its files already (``catalog.py``)."""
    shipped = catalog.shipped_onnx(model_dir, backend)
    if shipped is not None:
        return shipped
    path = exported_path(model_dir, model_id, backend, cache_dir)
    if path.is_file():
        return path
    try:
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(
            f"the ONNX file for {model_id} ({backend}) is not in {path.parent} and exporting "
            f"it needs torch and sentence-transformers; this installation has none ({exc}): "
            f"build the image's export stage (it writes {path.name}), or install torch"
        ) from exc
    from myaiserv.embeddings.torch_backend import load_model

    log.info("exporting embedding model to ONNX", extra={"path": str(path), "backend": backend})
    export(load_model(model_dir), path, quantize=backend == "onnx-int8")
    return path
