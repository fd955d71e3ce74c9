"""The ONNX backends at run time: tokenizer, ONNX Runtime and pooling, without torch.

Needs onnxruntime, tokenizers and numpy only: torch, transformers and sentence-transformers
are the export's (``onnx.py``), which a production image runs in its build stage. What
sentence-transformers would do with the model folder is read from the folder itself
(``modules.json``, ``sentence_bert_config.json``, the pooling module's ``config.json``,
``tokenizer.json``) and done here in numpy, so the vectors are the ones
sentence-transformers gives with the transformer on ONNX Runtime
(``tests/unit/embeddings/test_runtime.py`` compares the two on CISI).

Each text runs alone, unpadded: int8's activation scale is then the text's own, so its
vector never depends on the texts batched beside it, and no compute goes to padding. A
batch's texts run side by side, ``threads`` at a time (0: one per core), each on one
thread: a single short sequence's matrices are too small to share out among cores, whole
texts are not (measured on CISI chunks, 2 cores: 90-100 chunks/s against 64-68 with every
text on both cores; a query takes ~4 ms either way).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer, normalizers

from myaiserv.embeddings.cores import IDLE, computing, cores, name_os_thread

# The tokenizer would otherwise run a batch on a thread pool of its own, one thread per
# core, beside the cores a batch leased (``cores.py``); on the calling thread it costs
# milliseconds against the model's hundreds.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# What sentence-transformers calls the modules a folder may declare; others (Dense,
# LayerNorm, Router...) would change the vectors in ways this module does not reproduce.
TRANSFORMER, POOLING, NORMALIZE = "Transformer", "Pooling", "Normalize"
POOLING_MODES = ("mean", "cls", "max")
# sentence-transformers' older pooling configs: one boolean per mode.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# The exported graph's inputs, and where a tokenizer's ``Encoding`` keeps each.
_FEEDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
OUTPUT = "last_hidden_state"


@dataclass(frozen=True)
class Pipeline:
    """What a sentence-transformers model folder says happens around its transformer."""

    max_seq_length: int
    do_lower_case: bool
    pooling: str
    dims: int
    normalize: bool


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _pooling_mode(config: dict[str, Any], where: Path) -> str:
    mode = config.get("pooling_mode")
    if mode is None:
        active = [m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key)]
        mode = active or "mean"
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode not in POOLING_MODES:
        raise ValueError(
            f"{where} asks for pooling {mode!r}; the ONNX backends do "
            f"{', '.join(POOLING_MODES)}: use the torch backend for this model"
        )
    return str(mode)


def _max_seq_length(folder: Path, declared: Any) -> int:
    """sentence_bert_config's ``max_seq_length``; without one, the tokenizer's
    ``model_max_length`` capped at the model's positions, as sentence-transformers does."""
    if declared is not None:
        return int(declared)
    limits = []
    if (folder / "tokenizer_config.json").is_file():
        limits.append(_read_json(folder / "tokenizer_config.json").get("model_max_length"))
    if (folder / "config.json").is_file():
        positions = _read_json(folder / "config.json").get("max_position_embeddings")
        limits.append(None if positions == -1 else positions)
    known = [int(n) for n in limits if n is not None]
    if not known:
        raise ValueError(f"{folder} says no maximum input length")
    return min(known)


def read_pipeline(model_dir: str | Path) -> Pipeline:
    """The folder's modules: its transformer at the root, then pooling, then optionally
    normalization; anything else is refused, since its vectors would differ."""
    folder = Path(model_dir)
    if not (folder / "modules.json").is_file():
        raise ValueError(f"{folder} is not a sentence-transformers model (no modules.json)")
    modules = _read_json(folder / "modules.json")
    kinds = [str(m["type"]).rsplit(".", 1)[-1] for m in modules]
    if kinds not in ([TRANSFORMER, POOLING], [TRANSFORMER, POOLING, NORMALIZE]):
        raise ValueError(
            f"{folder}'s modules are {' -> '.join(kinds)}; the ONNX backends run "
            f"{TRANSFORMER} -> {POOLING} [-> {NORMALIZE}]: use the torch backend for this model"
        )
    if modules[0].get("path", ""):
        raise ValueError(
            f"{folder}'s transformer is in a subfolder; the ONNX backends need it at the root"
        )
    pooling_dir = folder / modules[1]["path"]
    pooling = _read_json(pooling_dir / "config.json")
    dims = pooling.get("embedding_dimension") or pooling.get("word_embedding_dimension")
    if not dims:
        raise ValueError(f"{pooling_dir / 'config.json'} gives no dimension")
    sbert = folder / "sentence_bert_config.json"
    config = _read_json(sbert) if sbert.is_file() else {}
    return Pipeline(
        max_seq_length=_max_seq_length(folder, config.get("max_seq_length")),
        do_lower_case=bool(config.get("do_lower_case", False)),
        pooling=_pooling_mode(pooling, pooling_dir / "config.json"),
        dims=int(dims),
        normalize=kinds[-1] == NORMALIZE,
    )


def load_tokenizer(model_dir: str | Path, *, lower_case: bool, max_length: int | None) -> Tokenizer:
    """The folder's fast tokenizer, set up once: truncated at ``max_length`` (None: never,
    for counting), never padded (each text runs alone). Its settings never change after,
    so threads may share it."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"{path.parent} has no tokenizer.json, which the ONNX backends read")
    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json may carry settings of its own (all-MiniLM-L6-v2's: pad and truncate
    # at 128); sentence-transformers overrides them on every call, this does so once.
    tokenizer.no_padding()
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length, strategy="longest_first", direction="right")
    if lower_case:  # sentence-transformers puts a Lowercase in front (lowercasing twice is once)
        current = tokenizer.normalizer
        steps = [normalizers.Lowercase(), *([current] if current is not None else [])]
        tokenizer.normalizer = normalizers.Sequence(steps)
    return tokenizer


def pool(hidden: np.ndarray, mode: str) -> np.ndarray:
    """One text's token vectors (tokens x hidden, no padding) to one vector."""
    if mode == "mean":
        return np.asarray(hidden.sum(axis=0) / max(len(hidden), 1), dtype=np.float32)
    if mode == "cls":
        return np.asarray(hidden[0], dtype=np.float32)
    if mode == "max":
        return np.asarray(hidden.max(axis=0), dtype=np.float32)
    raise ValueError(f"pooling {mode!r} is not one of {', '.join(POOLING_MODES)}")


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2 rows, with torch's ``F.normalize`` floor (1e-12) for a zero row."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def session(path: Path) -> Any:
    """One session per process. Each run uses one thread: ``OnnxEncoder`` runs a batch's
    texts side by side (``Run`` is thread-safe), which keeps every core busy."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """A sentence-transformers model folder with its transformer exported to ``onnx_file``."""

    def __init__(self, model_dir: str | Path, onnx_file: Path, threads: int = 0) -> None:
        self.pipeline = read_pipeline(model_dir)
        self._tokenizer = load_tokenizer(
            model_dir,
            lower_case=self.pipeline.do_lower_case,
            max_length=self.pipeline.max_seq_length,
        )
        # Counting has a tokenizer of its own: no truncation, no special tokens.
        self._counter = load_tokenizer(
            model_dir, lower_case=self.pipeline.do_lower_case, max_length=None
        )
        self._session = session(onnx_file)
        names = [i.name for i in self._session.get_inputs()]
        unknown = set(names) - set(_FEEDS)
        if unknown:
            raise ValueError(f"{onnx_file} takes inputs {sorted(unknown)} no tokenizer gives")
        self._feeds = [(name, _FEEDS[name]) for name in names]
        self.width = threads or cores()
        self._pool = (
            ThreadPoolExecutor(self.width, thread_name_prefix="embed", initializer=_name_thread)
            if self.width > 1
            else None
        )

    @property
    def dims(self) -> int:
        return self.pipeline.dims

    @property
    def max_seq_length(self) -> int:
        return self.pipeline.max_seq_length

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(texts, add_special_tokens=False)]

    def _one(self, encoding: Encoding) -> np.ndarray:
        feed = {
            name: np.asarray([getattr(encoding, attr)], dtype=np.int64)
            for name, attr in self._feeds
        }
        with computing():
            (hidden,) = self._session.run([OUTPUT], feed)
        return pool(hidden[0], self.pipeline.pooling)

    def encode(
        self,
        texts: list[str],
        batch_size: int,
        *,
        normalize_embeddings: bool = True,
        threads: int | None = None,
    ) -> np.ndarray:
        """float32 rows, L2-normalised where the folder declares Normalize or the caller
        asks (as sentence-transformers' ``encode``). Longest first, ``batch_size`` texts at
        a time, as sentence-transformers batches (a text's vector does not depend on its
        batch), on ``threads`` threads (None: every one this encoder has)."""
        pooled = np.zeros((len(texts), self.dims), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        lanes = min(threads or self.width, self.width)

        def run(i: int) -> None:
            pooled[i] = self._one(encodings[i])

        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            if self._pool is None or lanes < 2 or len(part) < 2:
                for i in part:
                    run(i)
            else:
                in_lanes(self._pool, lanes, part, run)
        return normalize(pooled) if self.pipeline.normalize or normalize_embeddings else pooled


def in_lanes(
    pool: ThreadPoolExecutor, lanes: int, items: Sequence[int], run: Callable[[int], None]
) -> None:
    """``run`` every item on at most ``lanes`` of the pool's threads at once, each lane
    taking the next item when it is free (texts differ in length: no lane idles while
    another has a queue)."""
    taken = iter(items)
    lock = threading.Lock()

    def lane() -> None:
        while True:
            with lock:
                item = next(taken, None)
            if item is None:
                return
            run(item)

    for future in [pool.submit(lane) for _ in range(min(lanes, len(items)))]:
        future.result()


def _name_thread() -> None:
    name_os_thread(IDLE)
