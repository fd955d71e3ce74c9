"""Index definitions as versioned code, and their lifecycle behind aliases.

Each kind has a spec: mappings and settings with a version number. Concrete indices are
named ``{prefix}-{kind}-v{spec}-{stamp}``, read through the alias ``{prefix}-{kind}`` and
written through a write alias of their own (``write_alias``: it goes with its index, so a
late writer cannot create a dropped index again). A reindex creates a new concrete index
from the spec, fills it and swaps the alias in one atomic ``_aliases`` call.

The embedding model's id and dimension are recorded in each index's ``_meta``; searches
and indexers embed with the model the index names (``myaiserv index switch-model`` moves
every kind to another model with one atomic alias swap).

One module, past 400 lines: the specs and the lifecycle that applies them change together
(a spec's version is what makes `index init` reindex; the body a spec makes is what the
template, ``create_index`` and ``mismatch`` each apply or check), so splitting them would
put one change in two places.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from myaiserv.embeddings.model import ModelInfo
from myaiserv.logging import get_logger
from myaiserv.search.kinds import KINDS, Kind

log = get_logger(__name__)

WRITE_ALIAS_SUFFIX = "-w"


def write_alias(index: str) -> str:
    """The alias through which every document write reaches concrete index ``index``
    (``indexers.bulk`` writes with ``require_alias``). Deleting the index deletes the
    alias, so a writer that chose the index before it was dropped (a batch that resolved
    its targets before a reindex swapped and dropped the old index) is refused with
    ``index_not_found`` instead of creating the index again from the template: an orphan
    behind no alias, holding that one batch."""
    return f"{index}{WRITE_ALIAS_SUFFIX}"


@dataclass(frozen=True)
class IndexOptions:
    """What the mappings depend on besides the spec: deployment settings."""

    analyzer: str = "standard"
    replicas: int = 0
    shards: int = 1
    refresh_interval: str = "1s"
    vector_index_type: str = "hnsw"  # explicit: ES 9.1+ would pick bbq_hnsw for 384 dims
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100
    app_stemmer: str = "english"  # see myaiserv.search.analysis
    metadata_fields: tuple[tuple[str, str], ...] = ()  # filterable metadata keys and types

    def analysis(self) -> dict[str, Any]:
        """What a reader must agree with to query an index correctly (kept in ``_meta``)."""
        return {
            "analyzer": self.analyzer,
            "app_stemmer": self.app_stemmer,
            "metadata_fields": dict(self.metadata_fields),
        }


def _text(options: IndexOptions, *, keyword: bool = False) -> dict[str, Any]:
    field: dict[str, Any] = {"type": "text", "analyzer": options.analyzer}
    if keyword:
        field["fields"] = {"raw": {"type": "keyword", "ignore_above": 512}}
    return field


def vector_field(model: ModelInfo, options: IndexOptions) -> dict[str, Any]:
    return {
        "type": "dense_vector",
        "dims": model.dims,
        "index": True,
        # Vectors are L2-normalised, so cosine == dot product; cosine is the safe choice.
        "similarity": "cosine",
        "index_options": {
            "type": options.vector_index_type,
            "m": options.hnsw_m,
            "ef_construction": options.hnsw_ef_construction,
        },
    }


def _common(o: IndexOptions) -> dict[str, Any]:
    """Fields every kind has: the entry's kind and type (facets), stems (BM25 when
    stemming happens in our code) and the typed, filterable metadata keys."""
    return {
        "kind": {"type": "keyword"},
        "type": {"type": "keyword"},
        "stems": {"type": "text", "analyzer": "whitespace"},
        "meta": {
            "type": "object",
            "dynamic": "false",
            "properties": {name: {"type": kind} for name, kind in o.metadata_fields},
        },
    }


_KW = {"type": "keyword"}
_DATE = {"type": "date"}
_INT = {"type": "integer"}
_LONG = {"type": "long"}
_FLOAT = {"type": "float"}


def _documents(model: ModelInfo, o: IndexOptions) -> dict[str, Any]:
    """One Elasticsearch document per chunk; document fields are repeated on each chunk so
    filters and facets need no join."""
    return {
        "tenant_id": _KW,
        "document_id": _KW,
        "chunk_id": _KW,
        "position": _INT,
        "title": _text(o, keyword=True),
        "heading": _text(o),
        "text": _text(o),
        "source": _KW,
        "content_type": _KW,
        "tags": _KW,
        "metadata": {"type": "flattened"},
        "char_start": {"type": "integer", "index": False},
        "char_end": {"type": "integer", "index": False},
        # A PDF chunk's first and last page (from 1); absent for unpaged documents.
        "page_start": _INT,
        "page_end": _INT,
        "token_count": _INT,
        "version": _LONG,
        "created_at": _DATE,
        "updated_at": _DATE,
        "embedding": vector_field(model, o),
        **_common(o),
    }


def _prompts(model: ModelInfo, o: IndexOptions) -> dict[str, Any]:
    return {
        "tenant_id": _KW,
        "prompt_id": _KW,
        "name": _text(o, keyword=True),
        "description": _text(o),
        "tags": _KW,
        "labels": _KW,  # "production=3"
        "latest_version": _INT,
        "indexed_version": _INT,
        "template": _text(o),
        "variables": _KW,
        "version": _LONG,
        "created_at": _DATE,
        "updated_at": _DATE,
        "embedding": vector_field(model, o),
        **_common(o),
    }


def _conversations(model: ModelInfo, o: IndexOptions) -> dict[str, Any]:
    """Conversations and their messages in one index, told apart by ``doc_type``."""
    return {
        "tenant_id": _KW,
        "doc_type": _KW,  # conversation | message
        "conversation_id": _KW,
        "message_id": _KW,
        "title": _text(o, keyword=True),
        "role": _KW,
        "content": _text(o),
        "token_count": _INT,
        "metadata": {"type": "flattened"},
        "version": _LONG,
        "created_at": _DATE,
        "updated_at": _DATE,
        "embedding": vector_field(model, o),
        **_common(o),
    }


def _runs(model: ModelInfo, o: IndexOptions) -> dict[str, Any]:
    return {
        "tenant_id": _KW,
        "run_id": _KW,
        "provider": _KW,
        "model": _KW,
        "prompt_name": _KW,
        "prompt_version": _INT,
        "conversation_id": _KW,
        "input": _text(o),
        "output": _text(o),
        "status": _KW,
        "error": _text(o),
        "prompt_tokens": _INT,
        "completion_tokens": _INT,
        "total_tokens": _INT,
        "latency_ms": _FLOAT,
        "time_to_first_token_ms": _FLOAT,
        "cost_usd": {"type": "double"},
        "retrieved_chunk_ids": _KW,
        "cited_chunk_ids": _KW,
        "document_ids": _KW,  # lineage: documents whose chunks were retrieved or cited
        "metadata": {"type": "flattened"},
        "started_at": _DATE,
        "finished_at": _DATE,
        "trace_id": _KW,  # v3
        "version": _LONG,
        "created_at": _DATE,
        "updated_at": _DATE,
        "embedding": vector_field(model, o),
        **_common(o),
    }


@dataclass(frozen=True)
class IndexSpec:
    kind: Kind
    version: int
    properties: Any  # (ModelInfo, IndexOptions) -> dict

    def body(self, model: ModelInfo, options: IndexOptions) -> dict[str, Any]:
        return {
            "settings": {
                "number_of_shards": options.shards,
                "number_of_replicas": options.replicas,
                "refresh_interval": options.refresh_interval,
                # Tombstones of deletes outlive any stale write still in flight.
                "gc_deletes": "1h",
            },
            "mappings": {
                "dynamic": "strict",
                "_meta": {
                    "kind": self.kind,
                    "spec_version": self.version,
                    "model": model.model_id,
                    "dims": model.dims,
                    **options.analysis(),
                },
                "properties": self.properties(model, options),
            },
        }


SPECS: dict[str, IndexSpec] = {
    # v2: kind/type, app-side stems and typed metadata fields. documents v3: a PDF
    # chunk's pages (page_start, page_end).
    "documents": IndexSpec("documents", 3, _documents),
    "prompts": IndexSpec("prompts", 2, _prompts),
    "conversations": IndexSpec("conversations", 2, _conversations),
    # runs v3: trace_id (the trace a run was recorded in).
    "runs": IndexSpec("runs", 3, _runs),
}


class IndexModelMismatchError(RuntimeError):
    """The index was built with another embedding model (or none recorded), another spec
    version or other analysis settings: reading or writing it would give wrong results."""


@dataclass(frozen=True)
class Serving:
    """Each kind's concrete index behind its alias, and the ``_meta`` of the indices read."""

    index_of: dict[Kind, str]
    meta: dict[str, dict[str, Any]]

    def model_of(self, index: str) -> str:
        return str(self.meta.get(index, {}).get("model", ""))


class IndexManager:
    def __init__(
        self, es: AsyncElasticsearch, prefix: str, model: ModelInfo, options: IndexOptions
    ) -> None:
        self.es = es
        self.prefix = prefix
        self.model = model
        self.options = options

    def alias(self, kind: Kind) -> str:
        return f"{self.prefix}-{kind}"

    def template_name(self, kind: Kind) -> str:
        return f"{self.prefix}-{kind}"

    def new_index_name(self, kind: Kind) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        return f"{self.alias(kind)}-v{SPECS[kind].version}-{stamp}-{secrets.token_hex(2)}"

    async def put_template(self, kind: Kind) -> None:
        """The template makes every concrete index of the kind, whoever creates it, match
        the spec."""
        body = SPECS[kind].body(self.model, self.options)
        await self.es.indices.put_index_template(
            name=self.template_name(kind),
            index_patterns=[f"{self.alias(kind)}-v*"],
            template={"settings": body["settings"], "mappings": body["mappings"]},
            priority=100,
            meta={"managed_by": "myaiserv", "spec_version": SPECS[kind].version},
        )

    async def create_index(self, kind: Kind, model: ModelInfo | None = None) -> str:
        """A new concrete index of the spec, built for ``model`` (default: this process's),
        not yet behind the alias."""
        await self.put_template(kind)
        name = self.new_index_name(kind)
        body = SPECS[kind].body(model or self.model, self.options)
        await self.es.indices.create(
            index=name,
            settings=body["settings"],
            mappings=body["mappings"],
            aliases={write_alias(name): {}},
        )
        await self.es.cluster.health(index=name, wait_for_status="yellow", timeout="30s")
        return name

    async def current_index(self, kind: Kind) -> str | None:
        try:
            found = await self.es.indices.get_alias(name=self.alias(kind))
        except NotFoundError:
            return None
        names = list(found.body)
        for name in names:
            aliases = found.body[name].get("aliases", {})
            if aliases.get(self.alias(kind), {}).get("is_write_index"):
                return str(name)
        return str(max(names)) if names else None

    async def ensure(self, kind: Kind) -> str:
        """Create the first index and alias for a kind if there is none (a migration step,
        run by `myaiserv index init` and the indexer, not by web instances).

        Safe when several processes start at once on a fresh cluster (indexers scaled
        out): the index is created with the alias as its write alias in one request, and
        Elasticsearch refuses a second write index for an alias, so exactly one creator
        wins and the others use its index. An index made before writes went through
        ``write_alias`` gets its alias here."""
        await self.put_template(kind)
        current = await self.current_index(kind)
        if current is not None:
            await self.es.indices.put_alias(index=current, name=write_alias(current))
            return current
        name = self.new_index_name(kind)
        try:
            await self.es.indices.create(
                index=name,
                aliases={self.alias(kind): {"is_write_index": True}, write_alias(name): {}},
            )
        except ApiError:
            current = await self.current_index(kind)
            if current is None:
                raise
            log.info("first index created by another process", kind=kind, index=current)
            return current
        await self.es.cluster.health(index=name, wait_for_status="yellow", timeout="30s")
        return name

    async def ensure_all(self) -> dict[str, str]:
        return {kind: await self.ensure(kind) for kind in KINDS}

    async def swap_alias(self, kind: Kind, new_index: str) -> str | None:
        """Point the alias at ``new_index`` in one atomic call; returns the old index."""
        return (await self.swap_aliases({kind: new_index}))[kind]

    async def swap_aliases(self, new: dict[Kind, str]) -> dict[Kind, str | None]:
        """Point each kind's alias at its new index, all in one atomic ``_aliases`` call
        (a search over several kinds never sees some switched and others not); returns
        each kind's old index."""
        old: dict[Kind, str | None] = {}
        actions: list[dict[str, Any]] = []
        for kind, new_index in new.items():
            current = await self.current_index(kind)
            alias = self.alias(kind)
            if current is not None and current != new_index:
                actions.append({"remove": {"index": current, "alias": alias}})
            actions.append({"add": {"index": new_index, "alias": alias, "is_write_index": True}})
            old[kind] = current if current != new_index else None
        await self.es.indices.update_aliases(actions=actions)
        return old

    async def serving(
        self,
        kinds: Sequence[Kind],
        extra: Sequence[str] = (),
        *,
        es: AsyncElasticsearch | None = None,
    ) -> Serving:
        """Which concrete index each kind's alias points at, and the ``_meta`` of those
        and of the ``extra`` indices (a reindex's): one round trip (on ``es``, e.g. a
        search's time-bounded client). An alias or index that is missing is left out
        (callers decide what that means); raises elasticsearch's errors."""
        names = [self.alias(k) for k in kinds] + list(extra)
        found = await (es or self.es).indices.get(
            index=",".join(names),
            filter_path="*.aliases,*.mappings._meta",
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        by_alias: dict[Kind, str] = {}
        metas: dict[str, dict[str, Any]] = {}
        for name, body in found.body.items():
            metas[name] = body.get("mappings", {}).get("_meta", {})
            for kind in kinds:
                alias = body.get("aliases", {}).get(self.alias(kind))
                if alias is not None and (alias.get("is_write_index") or kind not in by_alias):
                    by_alias[kind] = name
        return Serving(by_alias, metas)

    async def meta(self, index: str) -> dict[str, Any]:
        mapping = await self.es.indices.get_mapping(index=index)
        meta: dict[str, Any] = mapping.body[index]["mappings"].get("_meta", {})
        return meta

    def mismatch(
        self, kind: Kind, index: str, meta: dict[str, Any], *, any_model: bool = False
    ) -> str | None:
        """Why an index with this ``_meta`` cannot serve this instance (None: it can).
        ``any_model``: an index built with another embedding model can (searches and
        indexers embed with the model the index names: ``embeddings.registry``)."""
        fix = f"; run `myaiserv index reindex {kind}`"
        if not meta.get("model") or not meta.get("dims"):
            return f"index {index} records no embedding model" + fix
        if not any_model and (
            meta.get("model") != self.model.model_id or meta.get("dims") != self.model.dims
        ):
            return (
                f"index {index} was built with embedding model {meta.get('model')!r} "
                f"({meta.get('dims')} dims) but this instance uses {self.model.model_id!r} "
                f"({self.model.dims} dims); run `myaiserv index switch-model "
                f"{self.model.model_id}`"
            )
        if meta.get("spec_version") != SPECS[kind].version:
            return (
                f"index {index} has mapping spec v{meta.get('spec_version')} but this "
                f"instance uses v{SPECS[kind].version}" + fix
            )
        wanted = self.options.analysis()
        found = {key: meta.get(key) for key in wanted}
        if found != wanted:
            return (
                f"index {index} was built with analysis {found} but this instance uses {wanted}"
                + fix
            )
        return None

    async def check_model(self, kind: Kind, *, any_model: bool = False) -> None:
        index = await self.current_index(kind)
        if index is None:
            return
        reason = self.mismatch(kind, index, await self.meta(index), any_model=any_model)
        if reason:
            raise IndexModelMismatchError(reason)
