"""Bulk ingest: files or folders (or a TREC-style collection) into a tenant's documents.

Documents are stored through the same service as the API (so the same validation,
dedupe and outbox rows), in batches, one transaction each; then the outbox is drained
(by an in-process worker, alongside any running indexers) and a summary is reported.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import func, select

from indexers.worker import Worker
from myaiserv.auth.repository import TenantRepository
from myaiserv.datasets.trec import load_collection
from myaiserv.db.models import OutboxEvent
from myaiserv.documents.service import DocumentService, NewDocument
from myaiserv.errors import AppError
from myaiserv.extract import ExtractionError, extract
from myaiserv.resources import Resources

EXTENSIONS = {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"}


@dataclass
class IngestSummary:
    documents: int = 0
    created: int = 0
    deduplicated: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    document_ids: list[UUID] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


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


async def count_chunks(resources: Resources, document_ids: list[UUID]) -> int:
    alias = resources.indices.alias("documents")
    await resources.es.indices.refresh(index=alias)
    total = 0
    for start in range(0, len(document_ids), 1000):
        ids = [str(d) for d in document_ids[start : start + 1000]]
        resp = await resources.es.count(index=alias, query={"terms": {"document_id": ids}})
        total += int(resp["count"])
    return total


async def ingest(
    resources: Resources,
    tenant_id: UUID,
    documents: Iterable[NewDocument],
    *,
    batch_size: int = 100,
    index: bool = True,
    workers: int = 1,
    on_stored: Callable[[int], None] | None = None,
    on_indexed: Callable[[int], None] | None = None,
    failed: list[tuple[str, str]] | None = None,
) -> IngestSummary:
    summary = IngestSummary(failed=failed if failed is not None else [])
    started = time.perf_counter()
    stop_workers = asyncio.Event()
    pool = [Worker(resources, name=f"ingest-{i}") for i in range(workers if index else 0)]

    async def run_worker(worker: Worker) -> None:
        # Index while storing: drain repeatedly until storing is over and nothing is due.
        while True:
            done = await worker.drain(idle_exit=True)
            if on_indexed and done:
                on_indexed(done)
            if stop_workers.is_set():
                async with resources.sessionmaker() as session:
                    left = await session.scalar(
                        select(func.count(OutboxEvent.id)).where(OutboxEvent.tenant_id == tenant_id)
                    )
                if not left:
                    return
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(run_worker(w)) for w in pool]
    try:
        batch: list[NewDocument] = []

        async def flush() -> None:
            async with resources.sessionmaker() as session, session.begin():
                service = DocumentService(session, tenant_id, resources.settings)
                results = await service.create_many(batch)
            summary.documents += len(results)
            for doc, dup in results:
                summary.document_ids.append(doc.id)
                summary.deduplicated += dup
                summary.created += not dup
            if on_stored:
                on_stored(len(results))
            batch.clear()

        for doc in documents:
            batch.append(doc)
            if len(batch) >= batch_size:
                await flush()
        if batch:
            await flush()
        stop_workers.set()
        await asyncio.gather(*tasks)
    finally:
        stop_workers.set()
        for w in pool:
            w.stop()
        for t in tasks:
            if not t.done():
                t.cancel()
    if index:
        summary.chunks = await count_chunks(resources, list(dict.fromkeys(summary.document_ids)))
    summary.seconds = time.perf_counter() - started
    return summary


def summary_lines(summary: IngestSummary) -> list[str]:
    lines = [
        (
            f"documents: {summary.documents} ({summary.created} new, "
            f"{summary.deduplicated} already stored, {len(summary.failed)} failed)"
        ),
        f"chunks:    {summary.chunks}",
        f"seconds:   {summary.seconds:.1f}",
        f"docs/s:    {summary.docs_per_s:.1f}",
        f"chunks/s:  {summary.chunks_per_s:.1f}",
    ]
    lines += [f"failed:    {path}: {reason}" for path, reason in summary.failed[:20]]
    return lines


def as_dict(summary: IngestSummary) -> dict[str, Any]:
    return {
        "documents": summary.documents,
        "created": summary.created,
        "deduplicated": summary.deduplicated,
        "failed": len(summary.failed),
        "chunks": summary.chunks,
        "seconds": round(summary.seconds, 3),
        "docs_per_s": round(summary.docs_per_s, 2),
        "chunks_per_s": round(summary.chunks_per_s, 2),
    }
