"""The ONNX backends as they ran before run time dropped torch: a sentence-transformers
model whose transformer's forward pass runs the exported file on ONNX Runtime, each text
alone and unpadded; tokenization, pooling and normalization stay sentence-transformers'.
The torch-free path (``myaiserv.embeddings.runtime``) must give these vectors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from myaiserv.embeddings import runtime
from myaiserv.embeddings.torch_backend import load_model


def sentence_transformer_on_onnx(model_dir: str, onnx_file: Path, threads: int = 0) -> Any:
    model = load_model(model_dir)
    runner = runtime.session(onnx_file)
    width = threads or runtime.cores()
    pool = ThreadPoolExecutor(width, thread_name_prefix="onnx-ref") if width > 1 else None
    names = [i.name for i in runner.get_inputs()]
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
    return model


def encode(model: Any, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """As ``Embedder.encode_sync`` called ``model.encode`` before."""
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)
