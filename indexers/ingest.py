"""Bulk ingest: files or folders (or a TREC-style collection) into a tenant's documents.

Documents are stored through the same service as the API (so the same validation,
dedupe and outbox rows), in batches, one transaction each, while their index states are
followed until each is indexed or failed, whichever process indexes them. Beside running
indexers (their heartbeats say they are alive) the ingest only stores: a second process
embedding on the same cores gains nothing (measured on 2 cores, before the cores were
leased: an ingest indexing beside `make run`'s indexer, the two together at ~38% of the
encoder's rate, the indexer alone at its full rate). With none alive, it indexes in its
own process (``LocalIndexers``), and a summary is reported.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from uuid import UUID

from indexers.heartbeat import Heartbeat
from indexers.worker import Worker
from myaiserv.auth.repository import TenantRepository
from myaiserv.datasets.trec import load_collection
from myaiserv.db.heartbeats import HeartbeatRepository
from myaiserv.db.index_state import count_states
from myaiserv.db.models import IndexerHeartbeat, IndexStatus
from myaiserv.db.outbox import OutboxRepository
from myaiserv.documents.service import DocumentService, NewDocument
from myaiserv.errors import AppError
from myaiserv.extract import ExtractionError, extract
from myaiserv.logging import get_logger
from myaiserv.resources import Resources

log = get_logger("indexers.ingest")

EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"}


IndexMode = Literal["auto", "here", "none"]
INDEX_MODES: tuple[IndexMode, ...] = get_args(IndexMode)


@dataclass
class IngestSummary:
    documents: int = 0
    created: int = 0
    deduplicated: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # could not be read
    index_failed: int = 0  # stored, then dead-lettered by the indexer
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0
    indexed_by: str = "none"  # "indexers" (running ones), "here", or "none"
    document_ids: list[UUID] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Progress:
    """Where an ingest stands, for the whole backlog: its documents as every indexer
    settled them (whichever process did), the rate of every live indexer."""

    stored: int
    indexed: int
    index_failed: int
    chunks_per_s: float  # every live indexer's, over its last minute
    tokens_per_s: float
    backlog: int  # outbox rows, every tenant and kind
    indexers: int  # live processes draining the outbox, this one's included
    indexing_here: bool


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS
            )
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(path)


def documents_from_files(
    paths: Iterable[Path], failed: list[tuple[str, str]]
) -> Iterator[NewDocument]:
    for path in iter_files(paths):
        try:
            extracted = extract(path.read_bytes(), None, path.name)
        except (ExtractionError, OSError) as exc:
            failed.append((str(path), str(exc)))
            continue
        yield NewDocument(
            text=extracted.text,
            content_type=extracted.content_type,
            title=extracted.title,
            source=str(path),
            extracted=True,
            page_starts=extracted.page_starts,
        )


def documents_from_collection(path: Path) -> Iterator[NewDocument]:
    """A TREC/SMART-format collection (e.g. CISI); documents keep their ids in metadata."""
    collection = load_collection(path)
    for doc in collection.documents:
        yield NewDocument(
            text=doc.text or doc.title,
            content_type="text/plain",
            title=doc.title or None,
            source=f"{collection.name}:{doc.id}",
            tags=[collection.name],
            metadata={f"{collection.name}_id": doc.id, "authors": doc.authors},
            extracted=True,
        )


async def tenant_id_for(resources: Resources, name: str) -> UUID:
    async with resources.sessionmaker() as session:
        tenant = await TenantRepository(session).get_by_name(name)
    if tenant is None:
        raise AppError(f"tenant {name!r} not found; create it with `myaiserv tenants create`")
    return tenant.id


async def chunk_totals(resources: Resources, document_ids: list[UUID]) -> tuple[int, int]:
    """(chunks, tokens) the index holds for these documents."""
    alias = resources.indices.alias("documents")
    await resources.es.indices.refresh(index=alias)
    chunks = tokens = 0
    for start in range(0, len(document_ids), 1000):
        ids = [str(d) for d in document_ids[start : start + 1000]]
        resp = await resources.es.search(
            index=alias,
            query={"terms": {"document_id": ids}},
            size=0,
            track_total_hits=True,
            aggs={"tokens": {"sum": {"field": "token_count"}}},
        )
        chunks += int(resp["hits"]["total"]["value"])
        tokens += int(resp["aggregations"]["tokens"]["value"] or 0)
    return chunks, tokens


class LocalIndexers:
    """Indexing in the ingest's own process: ``workers`` batch loops sharing its model,
    with a heartbeat (role ``ingest``) like an indexer's, so a second ingest follows this
    one instead of starting its own."""

    def __init__(self, resources: Resources, workers: int) -> None:
        self.resources = resources
        self.workers = max(1, workers)
        self.heartbeat = Heartbeat(resources, "ingest")
        self._pool: list[Worker] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def names(self) -> set[str]:
        """This process's name among the draining ones, while it is one."""
        return {self.heartbeat.name} if self.running else set()

    def start(self) -> None:
        if self.running:
            return
        self._pool = [
            Worker(self.resources, name=f"{self.heartbeat.name}-{i}", heartbeat=self.heartbeat)
            for i in range(self.workers)
        ]
        self._tasks = [asyncio.create_task(w.drain(idle_exit=False)) for w in self._pool]
        self._tasks.append(asyncio.create_task(self.heartbeat.run(self._stop)))

    async def stop(self) -> None:
        self._stop.set()
        for worker in self._pool:
            worker.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _look(
    resources: Resources, ids: list[UUID]
) -> tuple[dict[IndexStatus, int], list[IndexerHeartbeat], int]:
    """(these documents' index states, the live draining processes, the outbox's rows)."""
    ttl = resources.settings.indexing.heartbeat_ttl_s
    async with resources.sessionmaker() as session:
        states = await count_states(session, "documents", ids)
        live = await HeartbeatRepository(session).live(ttl)
        backlog, _ = await OutboxRepository(session).lag()
    return states, live, backlog


def _take(documents: Iterator[NewDocument], n: int) -> list[NewDocument]:
    return list(itertools.islice(documents, n))


async def ingest(
    resources: Resources,
    tenant_id: UUID,
    documents: Iterable[NewDocument],
    *,
    batch_size: int = 100,
    index: IndexMode = "auto",
    workers: int | None = None,
    on_stored: Callable[[int], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    failed: list[tuple[str, str]] | None = None,
    poll_s: float = 1.0,
) -> IngestSummary:
    """Store ``documents`` (batches of ``batch_size``, one transaction each), then follow
    them until every one is indexed or failed, whichever process indexes them.

    ``index``: ``auto`` indexes in this process only while no indexer is alive (a
    heartbeat within ``indexing.heartbeat_ttl_s``), so beside running indexers it only
    stores and follows; ``here`` indexes in this process as well, whatever runs;
    ``none`` only stores. ``workers``: batch loops in this process (default
    ``indexing.concurrency``); every loop's batches lease their cores from the machine's
    other embedding processes."""
    summary = IngestSummary(failed=failed if failed is not None else [])
    started = time.perf_counter()
    local = LocalIndexers(resources, workers or resources.settings.indexing.concurrency)
    if index == "here":
        local.start()
    stored_all = asyncio.Event()

    async def follow() -> None:
        while True:
            done = stored_all.is_set()  # before reading: the ids are then complete
            states, live, backlog = await _look(resources, summary.document_ids)
            others = [p for p in live if p.name != local.heartbeat.name]
            if index == "auto" and not local.running and not others:
                log.info("no indexer is running: indexing in this process")
                local.start()
            summary.index_failed = states["failed"]
            if on_progress:
                on_progress(
                    Progress(
                        stored=summary.documents,
                        indexed=states["indexed"],
                        index_failed=states["failed"],
                        chunks_per_s=sum(p.chunks_per_s for p in live),
                        tokens_per_s=sum(p.tokens_per_s for p in live),
                        backlog=backlog,
                        indexers=len({p.name for p in live} | local.names()),
                        indexing_here=local.running,
                    )
                )
            if done and states["pending"] == 0:
                summary.indexed_by = "here" if local.running else "indexers"
                return
            await asyncio.sleep(poll_s)

    following = asyncio.create_task(follow()) if index != "none" else None
    try:
        stream = iter(documents)
        while batch := await asyncio.to_thread(_take, stream, batch_size):
            async with resources.sessionmaker() as session, session.begin():
                service = DocumentService(session, tenant_id, resources.settings)
                results = await service.create_many(batch)
            for doc, dup in results:
                summary.document_ids.append(doc.id)
                summary.deduplicated += dup
                summary.created += not dup
            summary.documents += len(results)
            if on_stored:
                on_stored(len(results))
        stored_all.set()
        if following is not None:
            await following
    finally:
        stored_all.set()
        if following is not None and not following.done():
            following.cancel()
        await local.stop()
    if index != "none":
        ids = list(dict.fromkeys(summary.document_ids))
        summary.chunks, summary.tokens = await chunk_totals(resources, ids)
    summary.seconds = time.perf_counter() - started
    return summary


def summary_lines(summary: IngestSummary) -> list[str]:
    lines = [
        (
            f"documents: {summary.documents} ({summary.created} new, "
            f"{summary.deduplicated} already stored, {len(summary.failed)} unreadable)"
        ),
        (
            f"indexed:   by {_INDEXED_BY[summary.indexed_by]}, "
            f"{summary.index_failed} failed (`myaiserv indexer status`, dead letters)"
        ),
        f"chunks:    {summary.chunks} ({summary.tokens} tokens)",
        f"seconds:   {summary.seconds:.1f}",
        f"docs/s:    {summary.docs_per_s:.1f}",
        f"chunks/s:  {summary.chunks_per_s:.1f}",
        f"tokens/s:  {summary.tokens_per_s:.0f}",
    ]
    lines += [f"unreadable: {path}: {reason}" for path, reason in summary.failed[:20]]
    return lines


_INDEXED_BY = {
    "indexers": "the running indexers",
    "here": "this process",
    "none": "nobody yet (--index none)",
}


def as_dict(summary: IngestSummary) -> dict[str, Any]:
    return {
        "documents": summary.documents,
        "created": summary.created,
        "deduplicated": summary.deduplicated,
        "failed": len(summary.failed),
        "index_failed": summary.index_failed,
        "indexed_by": summary.indexed_by,
        "chunks": summary.chunks,
        "tokens": summary.tokens,
        "seconds": round(summary.seconds, 3),
        "docs_per_s": round(summary.docs_per_s, 2),
        "chunks_per_s": round(summary.chunks_per_s, 2),
        "tokens_per_s": round(summary.tokens_per_s, 1),
    }
