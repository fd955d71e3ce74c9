"""Documents as MCP resources: ``myaiserv://documents/{id}`` (read scope, as
``GET /v1/documents/{id}``), listed newest first in pages."""

from __future__ import annotations

import re
from uuid import UUID

from mcp_types import (
    ListResourcesResult,
    ListResourceTemplatesResult,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    TextResourceContents,
)

from myaiserv.db.models import Document
from myaiserv.documents.service import DocumentService
from myaiserv.kit.validation import InvalidInputError
from myaiserv.mcp.context import Caller

PREFIX = "myaiserv://documents/"
TEMPLATE = ResourceTemplate(
    name="document",
    uri_template=PREFIX + "{id}",
    description="A document of this tenant's knowledge base by id: its text.",
)
PAGE = 50
_UUID = re.compile(r"[0-9a-fA-F-]{32,36}")


def uri_of(document_id: UUID) -> str:
    return f"{PREFIX}{document_id}"


def _mime(doc: Document) -> str:
    # PDFs are stored as their extracted text; text types as given.
    return doc.content_type if doc.content_type.startswith("text/") else "text/plain"


def templates() -> ListResourceTemplatesResult:
    return ListResourceTemplatesResult(resource_templates=[TEMPLATE])


async def list_documents(caller: Caller, cursor: str | None) -> ListResourcesResult:
    caller.require("read")
    async with caller.unit_of_work() as session:
        service = DocumentService(session, caller.tenant_id, caller.resources.settings)
        rows, next_cursor = await service.list(cursor=cursor, limit=PAGE, tag=None)
    return ListResourcesResult(
        resources=[
            Resource(uri=uri_of(d.id), name=d.title, mime_type=_mime(d), description=d.source)
            for d in rows
        ],
        next_cursor=next_cursor,
    )


def document_id(uri: str) -> UUID:
    tail = uri[len(PREFIX) :] if uri.startswith(PREFIX) else ""
    if not _UUID.fullmatch(tail):
        raise InvalidInputError("uri", f"not a document's URI ({PREFIX}<id>)")
    try:
        return UUID(tail)
    except ValueError:
        raise InvalidInputError("uri", f"not a document's URI ({PREFIX}<id>)") from None


async def read_document(caller: Caller, uri: str) -> ReadResourceResult:
    caller.require("read")
    found = document_id(uri)
    async with caller.unit_of_work() as session:
        service = DocumentService(session, caller.tenant_id, caller.resources.settings)
        doc = await service.get(found)
    return ReadResourceResult(
        contents=[TextResourceContents(uri=uri, text=doc.text, mime_type=_mime(doc))]
    )
