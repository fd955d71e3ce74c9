"""Documents: create (deduplicated by content), update, delete, read. Every change writes
its outbox row in the same transaction; the caller's unit of work commits."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.config import Settings
from myaiserv.db.models import Document, IndexStatus
from myaiserv.documents.repository import DocumentRepository
from myaiserv.documents.schemas import PageText
from myaiserv.errors import ConflictError, NotFoundError
from myaiserv.extract import ExtractionError, extract
from myaiserv.kit.validation import InvalidInputError, check_metadata, reject_nul


@dataclass
class NewDocument:
    text: str
    content_type: str
    title: str | None = None
    source: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    extracted: bool = False  # text already went through myaiserv.extract
    page_starts: tuple[int, ...] | None = None  # a PDF's pages (myaiserv.extract.Extracted)


def chunk_document_id(chunk_id: str) -> UUID | None:
    """The document a chunk id names (``<document id>:<position>:<digest>``, as the
    indexer makes them), or None when it names none."""
    head, sep, _ = chunk_id.partition(":")
    if not sep:
        return None
    try:
        return UUID(head)
    except ValueError:
        return None


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _default_title(doc: NewDocument, found: str | None) -> str:
    if doc.title:
        return doc.title
    if found:
        return found[:1000]
    if doc.source:
        return os.path.basename(doc.source.rstrip("/")) or doc.source[:1000]
    first = doc.text.strip().splitlines()[0] if doc.text.strip() else "Untitled"
    return first[:120]


class DocumentService:
    def __init__(self, session: AsyncSession, tenant_id: UUID, settings: Settings) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.settings = settings
        self.repo = DocumentRepository(session, tenant_id)

    def _prepare(self, doc: NewDocument, where: str) -> dict[str, Any]:
        reject_nul(doc.title, f"{where}title")
        reject_nul(doc.source, f"{where}source")
        reject_nul(doc.tags, f"{where}tags")
        check_metadata(
            doc.metadata,
            f"{where}metadata",
            max_value_chars=self.settings.limits.max_metadata_value_chars,
        )
        text, found_title, content_type = doc.text, None, doc.content_type
        page_starts = doc.page_starts
        if not doc.extracted:
            try:
                extracted = extract(doc.text.encode("utf-8", "surrogatepass"), doc.content_type)
            except ExtractionError as exc:
                raise InvalidInputError(f"{where}text", str(exc)) from None
            text, found_title, content_type = (
                extracted.text,
                extracted.title,
                extracted.content_type,
            )
            page_starts = extracted.page_starts
        if len(text) > self.settings.limits.max_document_chars:
            raise InvalidInputError(
                f"{where}text",
                f"{len(text)} characters; the limit is {self.settings.limits.max_document_chars}",
            )
        return {
            "title": _default_title(doc, found_title),
            "source": doc.source,
            "content_type": content_type,
            "text": text,
            "content_hash": content_hash(text),
            "tags": list(dict.fromkeys(doc.tags)),
            "metadata_": doc.metadata,
            "page_starts": list(page_starts) if page_starts is not None else None,
        }

    async def create_many(self, docs: list[NewDocument]) -> list[tuple[Document, bool]]:
        """Returns (document, deduplicated) per input, in input order. Content the tenant
        already has (or that repeats within the batch) is not stored twice."""
        where = "documents[{}]." if len(docs) > 1 else ""
        # Extraction, normalisation and hashing are CPU work (a batch may hold thousands
        # of documents): off the event loop.
        prepared = await asyncio.to_thread(
            lambda: [self._prepare(d, where.format(i)) for i, d in enumerate(docs)]
        )
        unique: dict[tuple[str | None, str], dict[str, Any]] = {}
        for row in prepared:
            unique.setdefault((row["source"], row["content_hash"]), row)
        inserted = await self.repo.insert_new(list(unique.values()))
        await self.repo.record(self.repo.upserted(d.id, d.version) for d in inserted)
        fresh = {(d.source, d.content_hash): d for d in inserted}
        existing = await self.repo.by_keys([k for k in unique if k not in fresh])
        out: list[tuple[Document, bool]] = []
        seen: set[tuple[str | None, str]] = set()
        for row in prepared:
            key = (row["source"], row["content_hash"])
            if key in fresh and key not in seen:
                out.append((fresh[key], False))
            else:
                out.append((fresh.get(key) or existing[key], True))
            seen.add(key)
        return out

    async def get(self, document_id: UUID) -> Document:
        return await self.repo.get(document_id)

    async def list(
        self,
        *,
        cursor: str | None,
        limit: int,
        tag: str | None,
        index_status: IndexStatus | None = None,
    ) -> tuple[list[Document], str | None]:
        return await self.repo.list(cursor=cursor, limit=limit, tag=tag, index_status=index_status)

    async def index_counts(self) -> dict[IndexStatus, int]:
        """How many of the tenant's documents are pending, indexed and failed."""
        return await self.repo.index_counts()

    async def update(
        self,
        document_id: UUID,
        changes: dict[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Document:
        """``expected_version``: the version the caller's edit was made on; a newer one
        stored since is a 409, so an edit never silently undoes another."""
        doc = await self.repo.get(document_id, for_update=True)
        if expected_version is not None and doc.version != expected_version:
            raise ConflictError(
                f"version: the document changed since (version {doc.version}, "
                f"not {expected_version}); reload it and edit again",
                extra={"field": "version"},
            )
        if "text" in changes or "content_type" in changes:
            prepared = await asyncio.to_thread(
                self._prepare,
                NewDocument(
                    text=changes.get("text", doc.text),
                    content_type=changes.get("content_type", doc.content_type),
                    title=doc.title,
                ),
                "",
            )
            doc.text = prepared["text"]
            doc.content_type = prepared["content_type"]
            doc.content_hash = prepared["content_hash"]
            doc.page_starts = prepared["page_starts"]  # edited text has no pages
        for name in ("title", "source", "tags", "metadata"):
            if name in changes:
                if name == "metadata":
                    check_metadata(
                        changes[name],
                        name,
                        max_value_chars=self.settings.limits.max_metadata_value_chars,
                    )
                else:
                    reject_nul(changes[name], name)
                setattr(doc, "metadata_" if name == "metadata" else name, changes[name])
        try:
            await self.repo.touch(doc)
        except IntegrityError:
            raise ConflictError(
                "text: another document of this tenant has this content from this source",
                extra={"field": "text"},
            ) from None
        return doc

    async def page(self, document_id: UUID, number: int) -> PageText:
        """Page ``number`` (from 1) of a PDF document; 404 for a page it does not have."""
        doc = await self.repo.get(document_id)
        starts = doc.page_starts or []
        if not 1 <= number <= len(starts):
            has = f"pages 1-{len(starts)}" if starts else "no pages (it is not a PDF)"
            raise NotFoundError(f"page {number}: document {document_id} has {has}")
        start = starts[number - 1]
        end = starts[number] if number < len(starts) else len(doc.text)
        text = doc.text[start:end].rstrip("\n")
        return PageText(
            document_id=doc.id,
            page=number,
            pages=len(starts),
            text=text,
            char_start=start,
            char_end=start + len(text),
        )

    async def delete(self, document_id: UUID) -> None:
        await self.repo.remove(document_id)
