"""The console's Documents pages against the real stack: search with highlights, facets
and filters; the list with index states; uploads of several files (a PDF among them), bad
files refused by name; a document's page, its edit (with stale-edit refusal) and deletion;
chunk links; tenant isolation, roles, CSRF, and user text escaped."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.console.documents import NOTICE_COOKIE
from myaiserv.db.index_state import settle
from myaiserv.db.models import Document
from myaiserv.documents.service import DocumentService, NewDocument
from myaiserv.embeddings.model import Embedder
from myaiserv.resources import Resources
from tests.support import (
    TenantKey,
    console_login,
    csrf_field,
    drain,
    make_tenant,
    make_user,
)
from tests.unit.extract.test_extract import make_pdf

pytestmark = pytest.mark.integration


async def add_document(
    resources: Resources,
    tenant_id: uuid.UUID,
    text: str,
    *,
    title: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Document:
    async with resources.sessionmaker() as session, session.begin():
        service = DocumentService(session, tenant_id, resources.settings)
        new = NewDocument(
            text=text,
            content_type="text/plain",
            title=title,
            source=f"test-{uuid.uuid4().hex[:8]}",
            tags=tags or [],
            metadata=metadata or {},
        )
        [(doc, _)] = await service.create_many([new])
    return doc


async def _notice_after(client: AsyncTestClient, response: Any) -> str:
    """Follow a post/redirect/get: the page's notice."""
    assert response.status_code == 303, response.text
    page = await client.get(response.headers["location"])
    assert page.status_code == 200, page.text
    found = re.search(r'<p class="notice" role="status">(.*?)</p>', page.text, re.DOTALL)
    return found.group(1) if found else ""


async def test_without_documents_the_page_says_to_upload(console: AsyncTestClient) -> None:
    page = await console.get("/console/documents")
    assert page.status_code == 200
    assert "No documents yet" in page.text
    assert '<input id="files" name="files" type="file" multiple' in page.text
    assert 'src="/console/static/documents.js"' in page.text
    blank = await console.get("/console/documents", params={"q": "   "})
    assert blank.status_code == 200 and "No documents yet" in blank.text


async def test_upload_several_files_including_a_pdf(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    pdf = make_pdf(["Quarterly heliotrope report, page one."], title="Heliotrope report")
    files = [
        ("files", ("report.pdf", pdf, "application/pdf")),
        ("files", ("notes.md", b"# Notes\n\nMarkdown notes about heliotropes.", "text/markdown")),
        ("files", ("page.html", b"<h1>Page</h1><p>HTML heliotropes.</p>", "text/html")),
        ("files", ("plain.txt", b"Plain heliotropes.", "text/plain")),
    ]
    response = await console.post(
        "/console/documents/upload", files=files, data={"tags": "flowers", **csrf_field(console)}
    )
    notice = await _notice_after(console, response)
    assert "Accepted 4: report.pdf, notes.md, page.html, plain.txt." in notice
    listed = (await console.get("/console/documents")).text
    assert "Heliotrope report" in listed and 'class="badge pending"' in listed
    assert NOTICE_COOKIE not in console.cookies  # shown once
    # Stored by the API's own upload code: text extracted, tags from the form.
    async with resources.sessionmaker() as session:
        rows, _ = await DocumentService(session, tenant.id, resources.settings).list(
            cursor=None, limit=10, tag="flowers"
        )
    assert sorted(d.content_type for d in rows) == [
        "application/pdf",
        "text/html",
        "text/markdown",
        "text/plain",
    ]
    assert any("Quarterly heliotrope report" in d.text for d in rows)

    # The indexer makes them searchable; the list shows it.
    await drain(resources)
    listed = (await console.get("/console/documents")).text
    assert listed.count('class="badge indexed"') == 4


async def test_bad_files_are_refused_by_name_and_the_rest_accepted(
    console: AsyncTestClient,
) -> None:
    files = [
        ("files", ("good.txt", b"A good file.", "text/plain")),
        ("files", ("slides.docx", b"PK\x03\x04", "application/vnd.openxmlformats")),
        ("files", ("empty.txt", b"   \n ", "text/plain")),
        ("files", ("broken.pdf", b"this is no pdf", "application/pdf")),
    ]
    response = await console.post(
        "/console/documents/upload", files=files, data=csrf_field(console)
    )
    notice = await _notice_after(console, response)
    assert "Accepted 1: good.txt." in notice
    assert "Refused 3:" in notice
    assert "slides.docx (" in notice and "empty.txt (" in notice and "broken.pdf (" in notice
    assert "not a PDF" in notice


async def test_a_file_over_the_upload_limit_is_refused_by_name(
    settings: Settings, embedder: Embedder, resources: Resources, tenant: TenantKey
) -> None:
    limits = settings.limits.model_copy(update={"max_upload_bytes": 1024})
    small = settings.model_copy(update={"limits": limits})
    user = await make_user(resources, tenant, "editor")
    async with AsyncTestClient(app=create_app(small, embedder=embedder)) as client:
        client.follow_redirects = False
        assert (await console_login(client, user)).status_code == 303
        files = [
            ("files", ("big.txt", b"x" * 2000, "text/plain")),
            ("files", ("small.txt", b"small enough", "text/plain")),
        ]
        response = await client.post(
            "/console/documents/upload", files=files, data=csrf_field(client)
        )
        notice = await _notice_after(client, response)
    assert "Accepted 1: small.txt." in notice
    assert "big.txt (larger than the 1024-byte upload limit)" in notice


async def test_a_script_uploads_one_file_and_follows_its_status(
    console: AsyncTestClient, resources: Resources
) -> None:
    headers = {"Accept": "application/json", "x-csrftoken": csrf_field(console)["_csrf_token"]}
    ok = await console.post(
        "/console/documents/upload",
        files=[("files", ("one.md", b"# One\n\nA single file.", "text/markdown"))],
        headers=headers,
    )
    assert ok.status_code == 201, ok.text
    [result] = ok.json()["results"]
    assert result["ok"] and result["index_status"] == "pending"
    state = (await console.get(result["status_url"], headers={"Accept": "application/json"})).json()
    assert state["index_status"] == "pending"
    await drain(resources)
    state = (await console.get(result["status_url"], headers={"Accept": "application/json"})).json()
    assert state["index_status"] == "indexed"

    refused = await console.post(
        "/console/documents/upload",
        files=[("files", ("deck.pptx", b"PK\x03\x04", "application/vnd.ms-powerpoint"))],
        headers=headers,
    )
    assert refused.status_code == 415
    [result] = refused.json()["results"]
    assert result == {"name": "deck.pptx", "ok": False, "error": result["error"]}
    assert "deck.pptx" in refused.json()["message"]


async def test_search_highlights_matches_and_escapes_document_text(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(
        resources,
        tenant.id,
        "The zanzibarite crystal <script>alert('x')</script> glows at night.",
        title="<b>Crystals</b>",
    )
    await drain(resources)
    page = await console.get("/console/documents", params={"q": "zanzibarite"})
    assert page.status_code == 200, page.text
    assert "<mark>zanzibarite</mark>" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    assert "<b>Crystals</b>" not in page.text and "&lt;b&gt;Crystals&lt;/b&gt;" in page.text
    assert f'href="/console/documents/{doc.id}#chunk-{doc.id}:0:' in page.text

    # The document's own page escapes it too.
    shown = await console.get(f"/console/documents/{doc.id}")
    assert "<script>alert" not in shown.text and "&lt;script&gt;alert" in shown.text


async def test_search_facets_and_filters(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    red = await add_document(
        resources, tenant.id, "Quokka habits in red.", tags=["red"], metadata={"lang": "en"}
    )
    blue = await add_document(
        resources,
        tenant.id,
        "Quokka habits in blue.",
        tags=["blue"],
        metadata={"lang": "fr", "year": 2024, "reviewed": True},
    )
    await drain(resources)
    page = await console.get("/console/documents", params={"q": "quokka"})
    assert str(red.id) in page.text and str(blue.id) in page.text
    assert 'aria-label="tags"' in page.text
    assert 'href="/console/documents?q=quokka&amp;tags=red"' in page.text
    only_red = await console.get("/console/documents", params={"q": "quokka", "tags": "red"})
    assert str(red.id) in only_red.text and str(blue.id) not in only_red.text
    assert 'aria-current="true"' in only_red.text  # the active filter, to remove
    # Metadata fields the search may filter on are facets and filters too, typed.
    assert 'aria-label="lang"' in page.text and 'aria-label="year"' in page.text
    assert 'href="/console/documents?q=quokka&amp;meta.lang=fr"' in page.text
    for key, value in (("meta.lang", "fr"), ("meta.year", "2024"), ("meta.reviewed", "true")):
        only_blue = await console.get("/console/documents", params={"q": "quokka", key: value})
        assert str(blue.id) in only_blue.text and str(red.id) not in only_blue.text, key
    wrong = await console.get("/console/documents", params={"q": "quokka", "meta.year": "soon"})
    assert wrong.status_code == 422 and "metadata.year" in wrong.text  # the API's answer
    # Without a query, the list filters by tag and by index status.
    listed = await console.get("/console/documents", params={"tags": "blue"})
    assert str(blue.id) in listed.text and str(red.id) not in listed.text
    failed = await console.get("/console/documents", params={"index_status": "failed"})
    assert str(blue.id) not in failed.text and "No document has this tag or status" in failed.text


async def test_the_list_is_paged_with_cursors(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    for i in range(22):
        await add_document(resources, tenant.id, f"Paged document number {i}.", title=f"doc-{i:02}")
    first = await console.get("/console/documents")
    assert "doc-21" in first.text and "doc-00" not in first.text  # newest first
    found = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert found
    second = await console.get(found.group(1).replace("&amp;", "&"))
    assert "doc-00" in second.text and "doc-21" not in second.text


async def test_a_documents_page_shows_its_chunks_tags_metadata_and_runs_link(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(
        resources,
        tenant.id,
        "First paragraph about otters.\n\nSecond paragraph about beavers.",
        title="Rivers",
        tags=["animals"],
        metadata={"year": 2024, "lang": "en"},
    )
    pending = await console.get(f"/console/documents/{doc.id}")
    assert "waiting to be indexed" in pending.text
    await drain(resources)
    page = await console.get(f"/console/documents/{doc.id}")
    assert page.status_code == 200
    assert "<h1>Rivers</h1>" in page.text
    assert 'class="badge indexed"' in page.text
    assert ">animals</a>" in page.text and ">lang</td>" in page.text and ">2024</td>" in page.text
    assert f'href="/console/runs?document_id={doc.id}"' in page.text
    assert f'id="chunk-{doc.id}:0:' in page.text and "otters" in page.text
    assert 'action="/console/documents/' in page.text and "data-confirm=" in page.text


async def test_a_failed_document_shows_why(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(resources, tenant.id, "Cannot be indexed.")
    async with resources.sessionmaker() as session, session.begin():
        await settle(session, "documents", "failed", {doc.id: 1}, {doc.id: "mapper <rejected> it"})
    page = await console.get(f"/console/documents/{doc.id}")
    assert 'class="badge failed"' in page.text
    assert "mapper &lt;rejected&gt; it" in page.text
    assert "could not be indexed" in page.text


async def test_edit_tags_and_metadata_and_refuse_a_stale_edit(
    console: AsyncTestClient, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(resources, tenant.id, "Editable text.", title="Before")
    form = {
        "version": "1",
        "title": "After",
        "tags": "one, two",
        "metadata": '{"lang": "fr"}',
        **csrf_field(console),
    }
    response = await console.post(f"/console/documents/{doc.id}/edit", data=form)
    assert "Saved." in await _notice_after(console, response)
    got = (await api.get(f"/v1/documents/{doc.id}")).json()
    assert (got["title"], got["tags"], got["metadata"], got["version"]) == (
        "After",
        ["one", "two"],
        {"lang": "fr"},
        2,
    )
    # The same form again was made on version 1: refused, nothing changed.
    stale = await console.post(f"/console/documents/{doc.id}/edit", data={**form, "title": "X"})
    assert stale.status_code == 409
    assert "changed since" in stale.text
    assert (await api.get(f"/v1/documents/{doc.id}")).json()["title"] == "After"
    # Bad metadata: the form again, the error next to the field.
    bad = await console.post(
        f"/console/documents/{doc.id}/edit", data={**form, "version": "2", "metadata": "[1]"}
    )
    assert bad.status_code == 400
    assert 'id="metadata-error"' in bad.text and "JSON object" in bad.text
    long_tag = await console.post(
        f"/console/documents/{doc.id}/edit", data={**form, "version": "2", "tags": "x" * 201}
    )
    assert long_tag.status_code == 400 and 'id="tags-error"' in long_tag.text


async def test_delete_goes_back_to_the_list_with_a_notice(
    console: AsyncTestClient, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(resources, tenant.id, "Short-lived.", title="Ephemeral")
    response = await console.post(f"/console/documents/{doc.id}/delete", data=csrf_field(console))
    assert response.headers["location"] == "/console/documents"
    assert "Deleted Ephemeral." in await _notice_after(console, response)
    assert (await api.get(f"/v1/documents/{doc.id}")).status_code == 404


async def test_a_chunk_link_opens_its_place_in_the_document(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(resources, tenant.id, "Chunk link target.")
    await drain(resources)
    page = await console.get(f"/console/documents/{doc.id}")
    found = re.search(r'id="chunk-([^"]+)"', page.text)
    assert found
    chunk_id = found.group(1)
    response = await console.get(f"/console/chunks/{chunk_id}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/documents/{doc.id}#chunk-{chunk_id}"
    assert (await console.get("/console/chunks/not-a-chunk")).status_code == 404


async def test_another_tenants_documents_are_not_found(
    visitor: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    theirs = await add_document(resources, tenant.id, "Secret aardvark plans.", title="Theirs")
    await drain(resources)
    other = await make_tenant(resources)
    user = await make_user(resources, other, "admin")
    assert (await console_login(visitor, user)).status_code == 303
    assert (await visitor.get(f"/console/documents/{theirs.id}")).status_code == 404
    assert (await visitor.get(f"/console/documents/{theirs.id}/status")).status_code == 404
    assert (await visitor.get(f"/console/chunks/{theirs.id}:0:abc")).status_code == 404
    listed = await visitor.get("/console/documents")
    assert "Theirs" not in listed.text and "No documents yet" in listed.text
    found = await visitor.get("/console/documents", params={"q": "aardvark"})
    assert "Theirs" not in found.text
    for action in ("edit", "delete"):
        response = await visitor.post(
            f"/console/documents/{theirs.id}/{action}",
            data={"version": "1", "title": "Mine", **csrf_field(visitor)},
        )
        assert response.status_code == 404
    async with resources.sessionmaker() as session:
        still = await DocumentService(session, tenant.id, resources.settings).get(theirs.id)
    assert still.title == "Theirs"


async def test_a_viewer_reads_but_cannot_write(
    visitor: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(resources, tenant.id, "Read-only text.", title="Readable")
    viewer = await make_user(resources, tenant, "viewer")
    assert (await console_login(visitor, viewer)).status_code == 303
    listed = await visitor.get("/console/documents")
    assert "Readable" in listed.text and 'id="upload"' not in listed.text
    shown = await visitor.get(f"/console/documents/{doc.id}")
    assert shown.status_code == 200 and "/edit" not in shown.text and "/delete" not in shown.text
    refused = [
        await visitor.post(
            "/console/documents/upload",
            files=[("files", ("x.txt", b"x", "text/plain"))],
            data=csrf_field(visitor),
        ),
        await visitor.post(
            f"/console/documents/{doc.id}/edit",
            data={"version": "1", "title": "Changed", **csrf_field(visitor)},
        ),
        await visitor.post(f"/console/documents/{doc.id}/delete", data=csrf_field(visitor)),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    async with resources.sessionmaker() as session:
        service = DocumentService(session, tenant.id, resources.settings)
        assert (await service.get(doc.id)).title == "Readable"
        rows, _ = await service.list(cursor=None, limit=10, tag=None)
    assert len(rows) == 1


async def test_posts_without_a_csrf_token_are_refused(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc = await add_document(resources, tenant.id, "Guarded.", title="Guarded")
    responses = [
        await console.post(f"/console/documents/{doc.id}/delete"),
        await console.post(f"/console/documents/{doc.id}/edit", data={"title": "x"}),
        await console.post(
            "/console/documents/upload", files=[("files", ("x.txt", b"x", "text/plain"))]
        ),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403]
    async with resources.sessionmaker() as session:
        assert (
            await DocumentService(session, tenant.id, resources.settings).get(doc.id)
        ).title == "Guarded"
