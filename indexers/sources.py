"""From PostgreSQL rows to Elasticsearch actions, per kind.

The indexer never trusts an outbox row's snapshot: it reads the entity's *current* state
and writes it with the entity's current version. Several rows for one entity collapse to
one write; an entity that no longer exists becomes deletes.

Each target index gets the vectors of the model that built it: while a model switch builds
new indices, a batch is built once per model (``Builder.build``). One module, past 400
lines: the per-kind builders share that plumbing and are read side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from elasticsearch import AsyncElasticsearch
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from indexers.bulk import Action, BulkOp
from indexers.chunk import chunk_text
from myaiserv.config import Settings
from myaiserv.db.models import Conversation, Document, Message, Prompt, Run
from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.embeddings.registry import Embedders
from myaiserv.extract import page_range
from myaiserv.search.analysis import stems
from myaiserv.search.kinds import INDEX_OF, EntityKind, Kind
from myaiserv.search.metadata import typed


@dataclass(frozen=True)
class Entity:
    kind: EntityKind
    id: UUID


@dataclass(frozen=True)
class Target:
    """A concrete index an entity is written to, and the embedding model that built it
    (its vectors must come from that model)."""

    index: str
    model: str


@dataclass
class Pending:
    """What the outbox asks for one entity: the newest delete version, if any."""

    entity: Entity
    delete_version: int | None = None


class ModelNotLoadedError(RuntimeError):
    """A target's model was not loaded before building (``Embedders.get`` first)."""

    def __init__(self, model: str) -> None:
        super().__init__(f"embedding model {model!r} is not loaded")


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else value


def _pages(page_starts: list[int] | None, start: int, end: int) -> dict[str, int]:
    """A chunk's first and last page, for a paged document (a PDF); nothing otherwise."""
    if not page_starts:
        return {}
    first, last = page_range(page_starts, start, end)
    return {"page_start": first, "page_end": last}


class Builder:
    def __init__(
        self,
        session: AsyncSession,
        es: AsyncElasticsearch,
        embedder: CachedEmbedder,
        settings: Settings,
        targets: dict[Kind, list[Target]],
        embedders: Embedders | None = None,
    ) -> None:
        """``targets``: where each index kind is written (the index behind its alias, and
        any a reindex is building), each with its model; ``embedder`` embeds for the
        targets of its model, ``embedders`` gives the others (a model switch under way)."""
        self.session = session
        self.es = es
        self.embedder = embedder
        self.embedders = embedders
        self.settings = settings
        self.targets = targets
        self.stemmer = settings.search.app_stemmer
        self.meta_fields = dict(settings.search.metadata_fields)

    def _derived(
        self, kind: str, type_: str, text: str | None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Fields every entry carries besides its own (see search.indices._common)."""
        return {
            "kind": kind,
            "type": type_,
            "stems": stems(text, self.stemmer),
            "meta": typed(metadata, self.meta_fields),
        }

    def _actions(
        self,
        entity: Entity,
        op: BulkOp,
        doc_id: str,
        version: int,
        source: dict[str, Any] | None = None,
    ) -> list[Action]:
        return [
            Action(entity, op, target.index, doc_id, version, source)
            for target in self.targets.get(INDEX_OF[entity.kind], [])
        ]

    async def build(self, pending: Sequence[Pending]) -> list[Action]:
        """Every target's actions for ``pending``: built once per embedding model the
        targets name (one, except while a model switch builds new indices)."""
        models = list(dict.fromkeys(t.model for ts in self.targets.values() for t in ts))
        actions: list[Action] = []
        for model in models:
            actions += await self._for_model(model)._build(pending)
        return actions

    def _for_model(self, model: str) -> Builder:
        """This builder for the targets of ``model`` alone, embedding with it."""
        targets = {kind: [t for t in ts if t.model == model] for kind, ts in self.targets.items()}
        if model == self.embedder.embedder.model_id:
            embedder = self.embedder
        else:
            found = self.embedders.loaded(model) if self.embedders else None
            if found is None:
                raise ModelNotLoadedError(model)
            embedder = self.embedder.with_model(found)
        return Builder(self.session, self.es, embedder, self.settings, targets, self.embedders)

    async def _build(self, pending: Sequence[Pending]) -> list[Action]:
        by_kind: dict[str, list[Pending]] = {}
        for p in pending:
            if self.targets.get(INDEX_OF[p.entity.kind]):
                by_kind.setdefault(p.entity.kind, []).append(p)
        actions: list[Action] = []
        for kind, items in by_kind.items():
            actions += await getattr(self, f"_build_{kind}")(items)
        return actions

    # -- documents: one index entry per chunk ------------------------------------------

    async def _existing_chunk_ids(self, document_ids: list[str]) -> dict[str, set[str]]:
        """Chunk ids in the index per document (after a refresh, so the writes of any
        earlier batch are visible)."""
        alias = self.targets["documents"][0].index
        await self.es.indices.refresh(index=alias)
        found: dict[str, set[str]] = {d: set() for d in document_ids}
        for start in range(0, len(document_ids), 500):
            ids = document_ids[start : start + 500]
            search_after = None
            while True:
                body: dict[str, Any] = {
                    "query": {"terms": {"document_id": ids}},
                    "_source": False,
                    "fields": ["document_id"],
                    "size": 5000,
                    "sort": [{"chunk_id": "asc"}],
                }
                if search_after:
                    body["search_after"] = search_after
                resp = await self.es.search(index=alias, **body)
                hits = resp["hits"]["hits"]
                for hit in hits:
                    found[hit["fields"]["document_id"][0]].add(hit["_id"])
                if len(hits) < 5000:
                    break
                search_after = hits[-1]["sort"]
        return found

    async def _build_documents(self, items: list[Pending]) -> list[Action]:
        ids = [p.entity.id for p in items]
        rows = {
            d.id: d
            for d in await self.session.scalars(select(Document).where(Document.id.in_(ids)))
        }
        # Stale chunks exist only for documents that had an earlier version.
        needs_lookup = [
            str(p.entity.id)
            for p in items
            if p.entity.id not in rows or rows[p.entity.id].version > 1
        ]
        existing = await self._existing_chunk_ids(needs_lookup) if needs_lookup else {}

        cfg = self.settings.indexing
        info = self.embedder.embedder.info
        max_tokens = min(cfg.chunk_max_tokens, info.max_seq_length - 2)
        planned: list[tuple[Pending, Document, list[Any]]] = []
        texts: list[str] = []
        actions: list[Action] = []
        for p in items:
            doc = rows.get(p.entity.id)
            if doc is None:
                version = p.delete_version or 1
                for chunk_id in sorted(existing.get(str(p.entity.id), ())):
                    actions += self._actions(p.entity, "delete", chunk_id, version)
                continue
            chunks = chunk_text(
                str(doc.id),
                doc.text,
                count_tokens=self.embedder.embedder.count_tokens,
                max_tokens=max_tokens,
                overlap_tokens=min(cfg.chunk_overlap_tokens, max_tokens // 2),
                title=doc.title,
            )
            planned.append((p, doc, chunks))
            texts += [c.text for c in chunks]
        vectors = await self.embedder.encode(texts)
        row = 0
        for p, doc, chunks in planned:
            new_ids = set()
            for chunk in chunks:
                new_ids.add(chunk.id)
                source = {
                    "tenant_id": str(doc.tenant_id),
                    "document_id": str(doc.id),
                    "chunk_id": chunk.id,
                    "position": chunk.position,
                    "title": doc.title,
                    "heading": chunk.heading,
                    "text": doc.text[chunk.char_start : chunk.char_end],
                    "source": doc.source,
                    "content_type": doc.content_type,
                    "tags": list(doc.tags or []),
                    "metadata": doc.metadata_ or {},
                    "char_start": chunk.char_start,
                    "char_end": chunk.char_end,
                    **_pages(doc.page_starts, chunk.char_start, chunk.char_end),
                    "token_count": chunk.token_count,
                    "version": doc.version,
                    "created_at": _iso(doc.created_at),
                    "updated_at": _iso(doc.updated_at),
                    "embedding": vectors[row],  # float32, written as such by orjson
                    **self._derived("documents", "chunk", chunk.text, doc.metadata_),
                }
                row += 1
                actions += self._actions(p.entity, "index", chunk.id, doc.version, source)
            for stale in sorted(existing.get(str(doc.id), set()) - new_ids):
                actions += self._actions(p.entity, "delete", stale, doc.version)
        return actions

    # -- prompts -----------------------------------------------------------------------

    async def _build_prompts(self, items: list[Pending]) -> list[Action]:
        ids = [p.entity.id for p in items]
        rows = {
            r.id: r
            for r in await self.session.scalars(
                select(Prompt).where(Prompt.id.in_(ids)).options(selectinload(Prompt.versions))
            )
        }
        sources: list[tuple[Pending, Prompt, dict[str, Any]]] = []
        actions: list[Action] = []
        for p in items:
            prompt = rows.get(p.entity.id)
            if prompt is None:
                actions += self._actions(
                    p.entity, "delete", str(p.entity.id), p.delete_version or 1
                )
                continue
            number = (prompt.labels or {}).get("production") or prompt.latest_version
            version = next((v for v in prompt.versions if v.number == number), None)
            sources.append(
                (
                    p,
                    prompt,
                    {
                        "tenant_id": str(prompt.tenant_id),
                        "prompt_id": str(prompt.id),
                        "name": prompt.name,
                        "description": prompt.description,
                        "tags": list(prompt.tags or []),
                        "labels": [f"{k}={v}" for k, v in sorted((prompt.labels or {}).items())],
                        "latest_version": prompt.latest_version,
                        "indexed_version": number,
                        "template": version.template if version else None,
                        "variables": list(version.variables) if version else [],
                        "version": prompt.version,
                        "created_at": _iso(prompt.created_at),
                        "updated_at": _iso(prompt.updated_at),
                    },
                )
            )
        texts = [
            "\n".join(filter(None, [s["name"], s["description"], s["template"]]))
            for _, _, s in sources
        ]
        vectors = await self.embedder.encode(texts)
        for (p, prompt, source), vector, text in zip(sources, vectors, texts, strict=True):
            source["embedding"] = vector
            source.update(self._derived("prompts", "prompt", text))
            actions += self._actions(p.entity, "index", str(prompt.id), prompt.version, source)
        return actions

    # -- conversations and messages ------------------------------------------------------

    async def _build_conversations(self, items: list[Pending]) -> list[Action]:
        ids = [p.entity.id for p in items]
        rows = {
            r.id: r
            for r in await self.session.scalars(
                select(Conversation).where(Conversation.id.in_(ids))
            )
        }
        actions: list[Action] = []
        present: list[tuple[Pending, Conversation]] = []
        for p in items:
            conv = rows.get(p.entity.id)
            if conv is None:
                actions += self._actions(
                    p.entity, "delete", f"conversation:{p.entity.id}", p.delete_version or 1
                )
            else:
                present.append((p, conv))
        vectors = await self.embedder.encode([c.title or "" for _, c in present])
        for (p, conv), vector in zip(present, vectors, strict=True):
            source = {
                "tenant_id": str(conv.tenant_id),
                "doc_type": "conversation",
                "conversation_id": str(conv.id),
                "title": conv.title,
                "metadata": conv.metadata_ or {},
                "version": conv.version,
                "created_at": _iso(conv.created_at),
                "updated_at": _iso(conv.updated_at),
                **self._derived("conversations", "conversation", conv.title, conv.metadata_),
            }
            if conv.title:
                source["embedding"] = vector
            actions += self._actions(
                p.entity, "index", f"conversation:{conv.id}", conv.version, source
            )
        return actions

    async def _build_messages(self, items: list[Pending]) -> list[Action]:
        ids = [p.entity.id for p in items]
        rows = {
            r.id: r for r in await self.session.scalars(select(Message).where(Message.id.in_(ids)))
        }
        actions: list[Action] = []
        present: list[tuple[Pending, Message]] = []
        for p in items:
            msg = rows.get(p.entity.id)
            if msg is None:
                actions += self._actions(
                    p.entity, "delete", f"message:{p.entity.id}", p.delete_version or 1
                )
            else:
                present.append((p, msg))
        vectors = await self.embedder.encode([m.content for _, m in present])
        for (p, msg), vector in zip(present, vectors, strict=True):
            source = {
                "tenant_id": str(msg.tenant_id),
                "doc_type": "message",
                "conversation_id": str(msg.conversation_id),
                "message_id": str(msg.id),
                "role": msg.role,
                "content": msg.content,
                "token_count": msg.token_count,
                "version": msg.version,
                "created_at": _iso(msg.created_at),
                "updated_at": _iso(msg.updated_at),
                "embedding": vector,
                **self._derived("conversations", "message", msg.content),
            }
            actions += self._actions(p.entity, "index", f"message:{msg.id}", msg.version, source)
        return actions

    # -- runs --------------------------------------------------------------------------

    async def _build_runs(self, items: list[Pending]) -> list[Action]:
        ids = [p.entity.id for p in items]
        rows = {r.id: r for r in await self.session.scalars(select(Run).where(Run.id.in_(ids)))}
        actions: list[Action] = []
        present: list[tuple[Pending, Run]] = []
        for p in items:
            run = rows.get(p.entity.id)
            if run is None:
                actions += self._actions(
                    p.entity, "delete", str(p.entity.id), p.delete_version or 1
                )
            else:
                present.append((p, run))
        vectors = await self.embedder.encode(
            ["\n".join(filter(None, [r.input, r.output])) for _, r in present]
        )
        for (p, run), vector in zip(present, vectors, strict=True):
            chunk_ids = list(dict.fromkeys([*run.retrieved_chunk_ids, *run.cited_chunk_ids]))
            source = {
                "tenant_id": str(run.tenant_id),
                "run_id": str(run.id),
                "provider": run.provider,
                "model": run.model,
                "prompt_name": run.prompt_name,
                "prompt_version": run.prompt_version,
                "conversation_id": str(run.conversation_id) if run.conversation_id else None,
                "input": run.input,
                "output": run.output,
                "status": run.status,
                "error": run.error,
                "prompt_tokens": run.prompt_tokens,
                "completion_tokens": run.completion_tokens,
                "total_tokens": run.total_tokens,
                "latency_ms": run.latency_ms,
                "time_to_first_token_ms": run.time_to_first_token_ms,
                "cost_usd": float(run.cost_usd) if run.cost_usd is not None else None,
                "retrieved_chunk_ids": list(run.retrieved_chunk_ids),
                "cited_chunk_ids": list(run.cited_chunk_ids),
                # Chunk ids are "<document id>:<position>:<hash>": lineage needs no join.
                "document_ids": sorted({c.split(":", 1)[0] for c in chunk_ids}),
                "metadata": run.metadata_ or {},
                "started_at": _iso(run.started_at),
                "finished_at": _iso(run.finished_at),
                "trace_id": run.trace_id,
                "version": run.version,
                "created_at": _iso(run.created_at),
                "updated_at": _iso(run.updated_at),
                "embedding": vector,
                **self._derived(
                    "runs",
                    "run",
                    "\n".join(filter(None, [run.input, run.output, run.error])),
                    run.metadata_,
                ),
            }
            actions += self._actions(p.entity, "index", str(run.id), run.version, source)
        return actions
