"""The console's playground against the real stack: an answer streamed as server-sent
events by the same RAG service the API uses (the offline extractive answerer), its run
recorded, the conversation continued, the page without JavaScript, another tenant's
conversation refused, CSRF, and document text escaped."""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.console.playground import Source, segments_of
from myaiserv.conversations.service import ConversationService
from myaiserv.resources import Resources
from myaiserv.runs.service import RunService
from tests.support import TenantKey, console_login, csrf_field, drain, make_tenant, make_user

pytestmark = pytest.mark.integration

DOC = {
    "title": "Photosynthesis <b>guide</b>",
    "text": "Photosynthesis converts sunlight into chemical energy in plants. "
    "Chlorophyll in the leaves absorbs red and blue light <script>alert(1)</script>. "
    "Oxygen is released as a by-product of splitting water.",
    "tags": ["biology"],
}
QUESTION = "What does chlorophyll absorb?"


@pytest.fixture
async def kb(api: AsyncTestClient, resources: Resources) -> str:
    response = await api.post("/v1/documents", json=DOC)
    assert response.status_code == 201, response.text
    await drain(resources)
    return str(response.json()["id"])


def events(body: str) -> list[Any]:
    """The ``data:`` payloads of a server-sent event stream, in order."""
    out: list[Any] = []
    for block in body.split("\n\n"):
        data = "\n".join(line[5:].strip() for line in block.split("\n") if line.startswith("data:"))
        if data:
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def ask(console: AsyncTestClient, question: str, **fields: str) -> list[Any]:
    response = await console.post(
        "/console/playground/answer",
        data={"question": question, **fields},
        headers={
            "x-csrftoken": csrf_field(console)["_csrf_token"],
            "accept": "text/event-stream, application/json",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return events(response.text)


def streamed(stream: list[Any]) -> tuple[str, dict[str, Any]]:
    """The answer's text, and the chunk carrying citations, run and conversation."""
    text = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in stream
        if isinstance(e, dict) and e.get("choices")
    )
    (extensions,) = [e for e in stream if isinstance(e, dict) and "citations" in e]
    return text, extensions


async def test_an_answer_streams_with_citations_and_its_run(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey, kb: str
) -> None:
    stream = await ask(console, QUESTION)
    assert stream[-1] == "[DONE]"
    deltas = [e for e in stream if isinstance(e, dict) and e.get("choices")]
    assert len(deltas) > 2  # the text came in pieces
    text, extensions = streamed(stream)
    assert "Chlorophyll" in text and "[1]" in text
    (citation, *_) = extensions["citations"]
    assert citation["document_id"] == kb and citation["title"] == DOC["title"]
    run_id = UUID(extensions["run_id"])
    async with resources.sessionmaker() as session:
        run = await RunService(session, tenant.id).get(run_id)
        assert run.input == QUESTION and run.output == text
        assert run.conversation_id == UUID(extensions["conversation_id"])
        assert [str(c) for c in run.cited_chunk_ids] == [citation["chunk_id"]]


async def test_the_next_question_continues_the_conversation(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey, kb: str
) -> None:
    _, first = streamed(await ask(console, QUESTION))
    conversation = first["conversation_id"]
    _, second = streamed(
        await ask(console, "What is released as a by-product?", conversation=conversation)
    )
    assert second["conversation_id"] == conversation
    async with resources.sessionmaker() as session:
        messages, _ = await ConversationService(session, tenant.id).list_messages(
            UUID(conversation), cursor=None, limit=10
        )
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2].content == "What is released as a by-product?"
    # Reopened, the page shows the history (the document's text escaped).
    page = await console.get(f"/console/playground?conversation={conversation}")
    assert page.status_code == 200
    assert "What is released as a by-product?" in page.text
    assert f'value="{conversation}"' in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_without_javascript_the_form_gives_a_whole_answer_page(
    console: AsyncTestClient, kb: str
) -> None:
    form = {"question": QUESTION, "mode": "bm25", "k": "3", "tags": "biology"}
    page = await console.post("/console/playground", data={**form, **csrf_field(console)})
    assert page.status_code == 200, page.text
    assert re.search(r'<a class="cite" href="/console/chunks/[\w:-]+"', page.text)
    run = re.search(r'href="/console/runs/([0-9a-f-]{36})"', page.text)
    assert run is not None
    conversation = re.search(
        r'name="conversation" id="conversation" value="([0-9a-f-]{36})"', page.text
    )
    assert conversation is not None
    # Document text and titles are escaped, in the answer and in the sources.
    assert "<script>alert(1)</script>" not in page.text and "<b>guide</b>" not in page.text
    assert "Photosynthesis &lt;b&gt;guide&lt;/b&gt;" in page.text
    # The next question goes to the same conversation.
    again = {"question": "What is released?", "conversation": conversation.group(1)}
    page = await console.post("/console/playground", data={**again, **csrf_field(console)})
    assert page.status_code == 200
    assert QUESTION in page.text and "What is released?" in page.text


async def test_bad_options_are_shown_next_to_their_field(console: AsyncTestClient, kb: str) -> None:
    form = {"question": QUESTION, "k": "500", **csrf_field(console)}
    page = await console.post("/console/playground", data=form)
    assert page.status_code == 400
    assert 'id="k-error"' in page.text and "between 1 and 50" in page.text
    page = await console.post("/console/playground", data={"question": " ", **csrf_field(console)})
    assert page.status_code == 400 and 'id="question-error"' in page.text
    unknown = {"question": QUESTION, "model": "no-such-model", **csrf_field(console)}
    page = await console.post("/console/playground", data=unknown)
    assert page.status_code == 404 and 'id="model-error"' in page.text
    # The script gets the refusal as problem+json, before any stream.
    response = await console.post(
        "/console/playground/answer",
        data=unknown,
        headers={"x-csrftoken": csrf_field(console)["_csrf_token"], "accept": "application/json"},
    )
    assert response.status_code == 404
    assert "no-such-model" in response.json()["detail"]


async def test_an_empty_knowledge_base_answers_that_it_found_nothing(
    console: AsyncTestClient,
) -> None:
    page = await console.get("/console/playground")
    assert page.status_code == 200
    assert "No conversation yet" in page.text
    text, extensions = streamed(await ask(console, QUESTION))
    assert "found nothing" in text and extensions["citations"] == []


async def test_another_tenants_conversation_is_not_found(
    console: AsyncTestClient, resources: Resources, kb: str
) -> None:
    other = await make_tenant(resources)
    async with resources.sessionmaker() as session, session.begin():
        theirs, _ = await ConversationService(session, other.id).create(title="theirs")
    page = await console.get(f"/console/playground?conversation={theirs.id}")
    assert page.status_code == 404
    form = {"question": QUESTION, "conversation": str(theirs.id), **csrf_field(console)}
    assert (await console.post("/console/playground", data=form)).status_code == 404
    response = await console.post(
        "/console/playground/answer",
        data={"question": QUESTION, "conversation": str(theirs.id)},
        headers={"x-csrftoken": csrf_field(console)["_csrf_token"], "accept": "application/json"},
    )
    assert response.status_code == 404


async def test_asking_needs_a_csrf_token_and_the_write_scope(
    console: AsyncTestClient,
    visitor: AsyncTestClient,
    resources: Resources,
    tenant: TenantKey,
    kb: str,
) -> None:
    refused = await console.post("/console/playground/answer", data={"question": QUESTION})
    assert refused.status_code == 403
    refused = await console.post("/console/playground", data={"question": QUESTION})
    assert refused.status_code == 403
    # A viewer reads the page but cannot ask (the API's chat routes need write).
    viewer = await make_user(resources, tenant, "viewer")
    await console.post("/console/logout", data=csrf_field(console))
    assert (await console_login(visitor, viewer)).status_code == 303
    page = await visitor.get("/console/playground")
    assert page.status_code == 200 and "needs the editor role" in page.text
    form = {"question": QUESTION, **csrf_field(visitor)}
    assert (await visitor.post("/console/playground", data=form)).status_code == 403


def test_citation_markers_link_only_to_cited_passages() -> None:
    source = Source(n=1, chunk_id="c1", document_id="d1", title="t", text="x")
    pieces = segments_of("A [1] and [2] <b>", [source])
    assert [(p.text, p.source) for p in pieces] == [
        ("A ", None),
        ("[1]", source),
        (" and [2] <b>", None),
    ]
