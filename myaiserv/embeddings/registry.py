"""Every embedding model a process can serve, each loaded on first use.

A deployment embeds with one model at a time, the one its indices were built with (their
``_meta``), and that can change while it runs: ``myaiserv index switch-model`` builds new
indices with another model and swaps every alias at once. Searches and indexers follow
the indices, so each asks this registry for the model of the index it is about to use; the
configured model (``embedding.model``) is loaded at start, any other the first time an
index names it. A model that is not installed on this machine cannot be loaded: the
caller answers 503 and says how to install it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from myaiserv.embeddings import catalog
from myaiserv.embeddings.model import DEFAULT_MODEL, Embedder

if TYPE_CHECKING:
    from myaiserv.config import EmbeddingSettings


class ModelUnavailableError(RuntimeError):
    """An index names a model this machine cannot load."""


class Embedders:
    def __init__(self, settings: EmbeddingSettings, configured: Embedder) -> None:
        self.settings = settings
        self.configured = configured
        self._loaded: dict[str, Embedder] = {configured.model_id: configured}
        self._loading: dict[str, asyncio.Task[Embedder]] = {}

    def installed(self) -> list[str]:
        """The models this machine can embed with: the configured one, the packaged
        default, and the catalog's installed ones."""
        names = [self.configured.model_id, DEFAULT_MODEL]
        names += [name for name in catalog.CATALOG if catalog.installed_path(name)]
        return list(dict.fromkeys(names))

    def loaded(self, model_id: str) -> Embedder | None:
        return self._loaded.get(model_id)

    async def get(self, model_id: str) -> Embedder:
        """The model ``model_id``, loaded (once, however many callers ask at once);
        raises ModelUnavailableError when it cannot be."""
        found = self._loaded.get(model_id)
        if found is not None:
            return found
        task = self._loading.get(model_id)
        if task is None:
            task = self._loading[model_id] = asyncio.ensure_future(self._load(model_id))
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(model_id, None)

    async def _load(self, model_id: str) -> Embedder:
        cfg = self.settings
        # Catalog models have ONNX files only: on torch's deployments they run on int8.
        torchless = model_id in catalog.CATALOG and cfg.backend == "torch"
        backend = "onnx-int8" if torchless else cfg.backend
        embedder = Embedder(
            model_id,
            batch_size=cfg.batch_size,
            backend=backend,
            threads=cfg.threads,
            onnx_cache_dir=cfg.onnx_cache_dir,
            cores_dir=cfg.cores_dir if cfg.share_cores else None,
        )
        try:
            await embedder.aload()
        except (ValueError, RuntimeError, OSError) as exc:
            embedder.close()
            raise ModelUnavailableError(
                f"embedding model {model_id!r} cannot be loaded here: {exc}"
            ) from exc
        self._loaded[model_id] = embedder
        return embedder

    def close(self) -> None:
        """Close the models this registry loaded (the configured one is its owner's)."""
        for embedder in self._loaded.values():
            if embedder is not self.configured:
                embedder.close()
        self._loaded = {self.configured.model_id: self.configured}
