"""/v1/documents: JSON text, batches and file uploads; read, update, delete, list."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.db.models import Document, IndexStatus
from myaiserv.documents.schemas import (
    BatchResult,
    DocumentBatch,
    DocumentCreate,
    DocumentOut,
    DocumentPage,
    DocumentUpdate,
    PageText,
)
from myaiserv.documents.service import DocumentService, NewDocument
from myaiserv.documents.upload import UploadForm, read_upload
from myaiserv.kit.index_state import index_state
from myaiserv.kit.validation import InvalidInputError, changes_of
from myaiserv.resources import Resources


def to_out(doc: Document, *, text: bool = False, deduplicated: bool = False) -> DocumentOut:
    return DocumentOut(
        id=doc.id,
        title=doc.title,
        source=doc.source,
        content_type=doc.content_type,
        tags=list(doc.tags or []),
        metadata=dict(doc.metadata_ or {}),
        content_hash=doc.content_hash,
        version=doc.version,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
        text=doc.text if text else None,
        deduplicated=deduplicated,
        pages=len(doc.page_starts) if doc.page_starts else None,
        **index_state(doc),
    )


def new_document(item: DocumentCreate) -> NewDocument:
    return NewDocument(
        text=item.text,
        content_type=item.content_type,
        title=item.title,
        source=item.source,
        tags=item.tags,
        metadata=item.metadata,
    )


async def provide_document_service(
    db_session: AsyncSession, principal: Principal, resources: Resources
) -> DocumentService:
    return DocumentService(db_session, principal.tenant_id, resources.settings)


class DocumentController(Controller):
    path = "/v1/documents"
    tags = ["documents"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_document_service)}  # noqa: RUF012

    @post(
        "/",
        guards=[requires("write")],
        status_code=201,
        responses={200: ResponseSpec(DocumentOut, description="Already stored (deduplicated)")},
    )
    async def create(
        self,
        data: DocumentCreate,
        service: NamedDependency[DocumentService],
    ) -> Response[DocumentOut]:
        """Store a document given as JSON text (plain, Markdown or HTML). Content this
        tenant already has is not stored twice: the existing document is returned (200,
        ``deduplicated: true``)."""
        [(doc, dup)] = await service.create_many([new_document(data)])
        return Response(to_out(doc, deduplicated=dup), status_code=200 if dup else 201)

    @post("/batch", guards=[requires("write")], status_code=201)
    async def create_batch(
        self,
        data: DocumentBatch,
        service: NamedDependency[DocumentService],
    ) -> BatchResult:
        """Store many documents in one transaction: all of them, or none."""
        limit = service.settings.limits.max_batch_documents
        if len(data.documents) > limit:
            raise InvalidInputError(
                "documents", f"{len(data.documents)} documents; a batch holds at most {limit}"
            )
        results = await service.create_many([new_document(item) for item in data.documents])
        return BatchResult(
            created=sum(not dup for _, dup in results),
            deduplicated=sum(dup for _, dup in results),
            items=[to_out(doc, deduplicated=dup) for doc, dup in results],
        )

    @post(
        "/upload",
        guards=[requires("write")],
        status_code=201,
        responses={200: ResponseSpec(DocumentOut, description="Already stored (deduplicated)")},
    )
    async def upload(
        self,
        data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        service: NamedDependency[DocumentService],
    ) -> Response[DocumentOut]:
        """Upload a file (multipart field ``file``): plain text, Markdown, HTML or PDF.
        Optional fields: ``title``, ``source`` (defaults to the file name), ``tags``
        (comma-separated), ``metadata`` (a JSON object)."""
        new = await read_upload(data, service.settings.limits)
        [(doc, dup)] = await service.create_many([new])
        return Response(to_out(doc, deduplicated=dup), status_code=200 if dup else 201)

    @get("/", guards=[requires("read")])
    async def list_documents(
        self,
        service: NamedDependency[DocumentService],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: str | None = None,
        tag: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> DocumentPage:
        """Newest first (only those in ``index_status``, if given); pass ``next_cursor``
        back as ``cursor`` for the next page."""
        limit = min(limit, service.settings.limits.max_page_size)
        rows, next_cursor = await service.list(
            cursor=cursor, limit=limit, tag=tag, index_status=index_status
        )
        return DocumentPage(items=[to_out(d) for d in rows], next_cursor=next_cursor)

    @get("/{document_id:uuid}", guards=[requires("read")])
    async def get_document(
        self,
        document_id: UUID,
        service: NamedDependency[DocumentService],
    ) -> DocumentOut:
        return to_out(await service.get(document_id), text=True)

    @get("/{document_id:uuid}/pages/{page:int}", guards=[requires("read")])
    async def get_page(
        self,
        document_id: UUID,
        page: int,
        service: NamedDependency[DocumentService],
    ) -> PageText:
        """One page of a PDF document (a citation's ``url`` opens its first page)."""
        return await service.page(document_id, page)

    @patch("/{document_id:uuid}", guards=[requires("write")])
    async def update_document(
        self,
        document_id: UUID,
        data: DocumentUpdate,
        service: NamedDependency[DocumentService],
    ) -> DocumentOut:
        """Change some fields; the document's version goes up by one."""
        changes = changes_of(data)
        return to_out(await service.update(document_id, changes), text=True)

    @delete("/{document_id:uuid}", guards=[requires("write")])
    async def delete_document(
        self,
        document_id: UUID,
        service: NamedDependency[DocumentService],
    ) -> None:
        await service.delete(document_id)
