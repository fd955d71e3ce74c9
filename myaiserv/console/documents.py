"""The console's Documents pages: hybrid search with highlights and facets, or the list of
documents; uploads (several files, one document each); a document's page with its chunks,
its tags and metadata to edit, and its deletion. Every read and write goes through the
services the API uses (``DocumentService``, ``SearchService``, ``read_upload``).

Longer than most modules because it is one page's whole controller: the search and list
views, the upload's per-file outcomes, the edit form's errors and the notices shared by
them; everything it computes is display shaping, the logic stays in the services."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie, UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Response, Template
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.console.document_filters import buckets, facet_names, filters, href, query_of
from myaiserv.console.pages import highlighted, page, wants_json
from myaiserv.db.models import Document, IndexStatus
from myaiserv.documents.controller import to_out
from myaiserv.documents.schemas import DocumentUpdate
from myaiserv.documents.service import DocumentService, chunk_document_id
from myaiserv.documents.upload import UploadForm, parse_metadata, parse_tags, read_upload
from myaiserv.errors import AppError, NotFoundError
from myaiserv.kit.validation import InvalidInputError, changes_of
from myaiserv.resources import Resources
from myaiserv.search.deps import search_service
from myaiserv.search.schemas import SearchRequest, SearchResponse
from myaiserv.search.service import SearchService

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
MULTIPART = Body(media_type=RequestEncodingType.MULTI_PART)
PAGE_SIZE = 20
CHUNKS_PER_PAGE = 100
NOTICE_COOKIE = "myaiserv_documents_notice"
ACCEPTED_TYPES = (
    ".pdf,.html,.htm,.md,.markdown,.txt,text/plain,text/markdown,text/html,application/pdf"
)
STATUSES: tuple[IndexStatus, ...] = ("pending", "indexed", "failed")


@dataclass
class UploadFiles:
    files: list[UploadFile] = field(default_factory=list)
    tags: str | None = None


@dataclass
class EditForm:
    version: int = 0
    title: str = ""
    tags: str = ""
    metadata: str = ""


@dataclass(frozen=True)
class Outcome:
    """One uploaded file: accepted (its document) or refused (why)."""

    name: str
    document: Document | None = None
    deduplicated: bool = False
    error: str = ""
    status: int = 201

    def json(self) -> dict[str, Any]:
        if self.document is None:
            return {"name": self.name, "ok": False, "error": self.error}
        doc = self.document
        return {
            "name": self.name,
            "ok": True,
            "id": str(doc.id),
            "title": doc.title,
            "index_status": doc.index_status,
            "deduplicated": self.deduplicated,
            "href": f"/console/documents/{doc.id}",
            "status_url": f"/console/documents/{doc.id}/status",
        }


async def provide_documents(
    db_session: AsyncSession, principal: Principal, resources: Resources
) -> DocumentService:
    return DocumentService(db_session, principal.tenant_id, resources.settings)


async def provide_search(resources: Resources, principal: Principal) -> SearchService:
    return search_service(resources, principal.tenant_id)


def _notice_cookie(message: str) -> Cookie:
    value = base64.urlsafe_b64encode(message[:1500].encode()).decode()
    return Cookie(
        key=NOTICE_COOKIE,
        value=value,
        path="/console/documents",
        httponly=True,
        samesite="lax",
        max_age=60,
    )


def _read_notice(request: Request[Any, Any, Any]) -> str:
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return ""
    try:
        return base64.urlsafe_b64decode(raw.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _summary(outcomes: list[Outcome]) -> str:
    accepted = [o.name for o in outcomes if o.document is not None]
    refused = [f"{o.name} ({o.error})" for o in outcomes if o.document is None]
    parts = []
    if accepted:
        parts.append(f"Accepted {len(accepted)}: {', '.join(accepted)}.")
    if refused:
        parts.append(f"Refused {len(refused)}: {'; '.join(refused)}.")
    return " ".join(parts) or "No file was chosen."


class ConsoleDocumentsController(Controller):
    path = "/documents"
    include_in_schema = False
    dependencies = {  # noqa: RUF012
        "documents": Provide(provide_documents),
        "search": Provide(provide_search),
    }

    @get("/", guards=[requires("read")])
    async def index(
        self,
        request: Request[Any, Any, Any],
        documents: DocumentService,
        search: SearchService,
        resources: Resources,
        q: str = "",
        cursor: str | None = None,
    ) -> Template:
        """Search (with query text) or the list of documents, newest first."""
        q = q.strip()
        params = query_of(request)
        notice = _read_notice(request)
        ctx: dict[str, Any] = {
            "q": q,
            "params": params,
            "notice": notice,
            "accept": ACCEPTED_TYPES,
            "statuses": STATUSES,
            "hits": [],
            "rows": [],
            "facets": [],
            "total": None,
            "next_url": None,
            "first_url": href(params) if cursor else None,
        }
        if q:
            req = SearchRequest(
                query=q,
                kinds=["documents"],
                filters=filters(params, resources.settings),
                facets=facet_names(resources.settings),
                collapse=True,
                size=PAGE_SIZE,
                cursor=cursor,
            )
            body, _ = await search.search(req)
            found = msgspec.json.decode(body, type=SearchResponse)
            ctx["hits"] = [
                {
                    "fields": h.fields,
                    "title": [highlighted(f) for f in h.highlights.get("title", [])],
                    "text": [highlighted(f) for f in h.highlights.get("text", [])],
                }
                for h in found.hits
            ]
            ctx["total"] = found.total
            ctx["facets"] = [
                (name.removeprefix("metadata.").replace("_", " "), buckets(name, found, params))
                for name in facet_names(resources.settings)
            ]
            if found.next_cursor:
                ctx["next_url"] = f"{href(params)}&{urlencode({'cursor': found.next_cursor})}"
        else:
            tag = params["tags"][0] if params.get("tags") else None
            given = params["index_status"][0] if params.get("index_status") else None
            status = next((s for s in STATUSES if s == given), None)
            if given is not None and status is None:
                raise InvalidInputError("index_status", f"choose from {', '.join(STATUSES)}")
            rows, next_cursor = await documents.list(
                cursor=cursor,
                limit=PAGE_SIZE,
                tag=tag,
                index_status=status,
            )
            ctx["rows"] = rows
            ctx["filtered"] = bool(tag or status)
            if next_cursor:
                base = href(params)
                sep = "&" if "?" in base else "?"
                ctx["next_url"] = f"{base}{sep}{urlencode({'cursor': next_cursor})}"
        response = page(
            request, "documents/list.html", section="documents", title="Documents", **ctx
        )
        if notice:
            response.delete_cookie(NOTICE_COOKIE, path="/console/documents")
        return response

    @post("/upload", guards=[requires("write")], status_code=303)
    async def upload(
        self,
        request: Request[Any, Any, Any],
        documents: DocumentService,
        data: Annotated[UploadFiles, MULTIPART],
    ) -> Response[Any]:
        """One document per file, each accepted or refused on its own (a refused file
        names itself and why). A form post goes back to the list with a notice; a
        script (Accept: JSON) gets each file's outcome."""
        files = data.files if isinstance(data.files, list) else [data.files]
        outcomes: list[Outcome] = []
        for file in files:
            if not isinstance(file, UploadFile) or not file.filename:
                continue
            outcomes.append(await self._one(documents, file, data.tags))
        if wants_json(request):
            refused = [o for o in outcomes if o.document is None]
            status = refused[0].status if refused and len(refused) == len(outcomes) else 201
            if not outcomes:
                status = 400
            return Response(
                {"results": [o.json() for o in outcomes], "message": _summary(outcomes)},
                status_code=status,
            )
        return Redirect(
            "/console/documents", status_code=303, cookies=[_notice_cookie(_summary(outcomes))]
        )

    async def _one(self, documents: DocumentService, file: UploadFile, tags: str | None) -> Outcome:
        name = file.filename
        try:
            new = await read_upload(UploadForm(file=file, tags=tags), documents.settings.limits)
            [(doc, dup)] = await documents.create_many([new])
        except AppError as exc:
            detail = exc.detail.removeprefix("file: ").removeprefix("text: ")
            return Outcome(name, error=detail, status=exc.status_code)
        return Outcome(name, document=doc, deduplicated=dup)

    @get("/{document_id:uuid}/status", guards=[requires("read")])
    async def index_state(self, document_id: UUID, documents: DocumentService) -> dict[str, Any]:
        """A document's index state, for the upload script to poll."""
        doc = await documents.get(document_id)
        out = to_out(doc)
        return {
            "id": str(doc.id),
            "index_status": out.index_status,
            "index_error": out.index_error,
            "version": doc.version,
        }

    @get("/{document_id:uuid}", guards=[requires("read")])
    async def show(
        self,
        request: Request[Any, Any, Any],
        document_id: UUID,
        documents: DocumentService,
        search: SearchService,
        after: int | None = None,
    ) -> Template:
        doc = await documents.get(document_id)
        response = await self._detail(request, doc, search, after=after)
        if request.cookies.get(NOTICE_COOKIE):
            response.delete_cookie(NOTICE_COOKIE, path="/console/documents")
        return response

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        doc: Document,
        search: SearchService,
        *,
        after: int | None = None,
        form: EditForm | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        chunks = await search.chunks(doc.id, after=after, size=CHUNKS_PER_PAGE)
        metadata = dict(doc.metadata_ or {})
        shown = form or EditForm(
            version=doc.version,
            title=doc.title,
            tags=", ".join(doc.tags or []),
            metadata=json.dumps(metadata, ensure_ascii=False, indent=2) if metadata else "",
        )
        base = f"/console/documents/{doc.id}"
        return page(
            request,
            "documents/detail.html",
            section="documents",
            title=doc.title,
            status_code=status_code,
            doc=to_out(doc),
            metadata=metadata,
            chunks=chunks,
            form=shown,
            errors=errors or {},
            notice=_read_notice(request),
            next_url=f"{base}?after={chunks.next_after}" if chunks.next_after is not None else None,
            first_url=base if after is not None else None,
        )

    @post("/{document_id:uuid}/edit", guards=[requires("write")], status_code=303)
    async def edit(
        self,
        request: Request[Any, Any, Any],
        document_id: UUID,
        documents: DocumentService,
        search: SearchService,
        data: Annotated[EditForm, FORM],
    ) -> Response[Any]:
        """The API's PATCH: the same schema, the same service, refused if the document
        changed since the form was shown."""
        try:
            metadata = parse_metadata(data.metadata, documents.settings.limits.max_json_depth)
            update = msgspec.convert(
                {"title": data.title, "tags": parse_tags(data.tags), "metadata": metadata},
                DocumentUpdate,
            )
            await documents.update(document_id, changes_of(update), expected_version=data.version)
        except msgspec.ValidationError as exc:
            return await self._refused(request, document_id, documents, search, data, exc)
        except InvalidInputError as exc:
            return await self._refused(request, document_id, documents, search, data, exc)
        except AppError as exc:
            if exc.status_code != 409:
                raise
            return await self._refused(request, document_id, documents, search, data, exc)
        return Redirect(
            f"/console/documents/{document_id}",
            status_code=303,
            cookies=[_notice_cookie("Saved.")],
        )

    async def _refused(
        self,
        request: Request[Any, Any, Any],
        document_id: UUID,
        documents: DocumentService,
        search: SearchService,
        data: EditForm,
        exc: Exception,
    ) -> Template:
        message = exc.detail if isinstance(exc, AppError) else str(exc)
        where = message.split(":", 1)[0] if isinstance(exc, AppError) else ""
        if isinstance(exc, msgspec.ValidationError):
            found = re.search(r"\$\.(\w+)", message)
            where = found.group(1) if found else "title"
        name = where.split(".", 1)[0].split("[", 1)[0]
        if name not in ("title", "tags", "metadata", "version"):
            name = "metadata"
        doc = await documents.get(document_id)
        status = 409 if name == "version" else 400
        return await self._detail(
            request, doc, search, form=data, errors={name: message}, status_code=status
        )

    @post("/{document_id:uuid}/delete", guards=[requires("write")], status_code=303)
    async def delete(self, document_id: UUID, documents: DocumentService) -> Redirect:
        doc = await documents.get(document_id)
        await documents.delete(document_id)
        return Redirect(
            "/console/documents",
            status_code=303,
            cookies=[_notice_cookie(f"Deleted {doc.title}.")],
        )


class ConsoleChunksController(Controller):
    path = "/chunks"
    include_in_schema = False
    dependencies = {"documents": Provide(provide_documents)}  # noqa: RUF012

    @get("/{chunk_id:str}", guards=[requires("read")])
    async def chunk(self, chunk_id: str, documents: DocumentService) -> Redirect:
        """A chunk's place in its document's page (404 for a document not the tenant's)."""
        document_id = chunk_document_id(chunk_id)
        if document_id is None:
            raise NotFoundError("chunk not found")
        await documents.get(document_id)
        return Redirect(f"/console/documents/{document_id}#chunk-{chunk_id}", status_code=303)
