"""Citations that point to the page: a multi-page PDF uploaded through the API keeps where
each page begins; its chunks are indexed with the pages they span; search hits, chat
citations and /v1/rag/answer passages carry them; a citation's url opens its page."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.resources import Resources
from tests.support import drain
from tests.unit.extract.test_extract import make_pdf

pytestmark = pytest.mark.integration

# Five pages; the third alone speaks of tides, and each page is long enough that chunks
# (256 tokens) hold several pages: some chunk spans a page break.
TOPICS = [
    "glaciers carve valleys as the ice slowly flows downhill under its own weight",
    "volcanoes erupt when magma pressure exceeds the strength of the crust above",
    "spring tides happen when the sun and the moon pull along one line at new moon",
    "deserts receive less than twenty five centimetres of rain in a typical year",
    "coral reefs grow in warm shallow seas where sunlight reaches the sea floor",
]
PAGES = [
    "\n".join(f"Section {n + 1}, line {line}: {topic}." for line in range(1, 9))
    for n, topic in enumerate(TOPICS)
]


@pytest.fixture
async def manual(api: AsyncTestClient, resources: Resources) -> dict:
    files = {"file": ("earth.pdf", make_pdf(PAGES, title="Earth Science"), "application/pdf")}
    resp = await api.post("/v1/documents/upload", files=files)
    assert resp.status_code == 201, resp.text
    await drain(resources)
    return resp.json()


async def test_a_pdf_keeps_its_pages_and_each_opens_alone(api: AsyncTestClient, manual):
    assert manual["pages"] == 5
    third = (await api.get(f"/v1/documents/{manual['id']}/pages/3")).json()
    assert third["page"] == 3 and third["pages"] == 5
    assert third["text"].splitlines()[0] == f"Section 3, line 1: {TOPICS[2]}."
    assert third["text"].splitlines()[-1] == f"Section 3, line 8: {TOPICS[2]}."
    text = (await api.get(f"/v1/documents/{manual['id']}")).json()["text"]
    assert text[third["char_start"] : third["char_end"]] == third["text"]
    for page in (0, 6):
        missing = await api.get(f"/v1/documents/{manual['id']}/pages/{page}")
        assert missing.status_code == 404 and "pages 1-5" in missing.text

    plain = await api.post("/v1/documents", json={"text": "No pages here.", "title": "Plain"})
    assert plain.json()["pages"] is None
    unpaged = await api.get(f"/v1/documents/{plain.json()['id']}/pages/1")
    assert unpaged.status_code == 404 and "not a PDF" in unpaged.text


async def test_chunks_carry_the_pages_they_span(api: AsyncTestClient, manual):
    resp = await api.post(
        "/v1/search",
        json={
            "kinds": ["documents"],
            "filters": {"document_id": [manual["id"]]},
            "fields": ["text"],
            "size": 100,
        },
    )
    assert resp.status_code == 200, resp.text
    chunks = [h["fields"] for h in resp.json()["hits"]]
    assert chunks
    covered: set[int] = set()
    for chunk in chunks:
        first, last = chunk["page_start"], chunk["page_end"]
        assert 1 <= first <= last <= 5
        covered |= set(range(first, last + 1))
        # The pages whose lines the chunk holds are the pages it names.
        held = {n for n in range(1, 6) if f"Section {n}, line" in chunk["text"]}
        assert held <= set(range(first, last + 1)) and {first, last} <= held, chunk
    assert covered == {1, 2, 3, 4, 5}
    assert any(c["page_end"] > c["page_start"] for c in chunks)


async def test_hits_citations_and_passages_name_the_page(api: AsyncTestClient, manual):
    found = await api.post(
        "/v1/search", json={"query": "spring tides sun moon", "kinds": ["documents"], "size": 1}
    )
    hit = found.json()["hits"][0]
    assert hit["fields"]["page_start"] <= 3 <= hit["fields"]["page_end"]

    question = {"role": "user", "content": "When do spring tides happen?"}
    chat = await api.post(
        "/v1/chat/completions", json={"model": "myaiserv-rag", "messages": [question]}
    )
    assert chat.status_code == 200, chat.text
    citation = chat.json()["citations"][0]
    assert citation["page_start"] <= 3 <= citation["page_end"]
    assert citation["url"] == f"/v1/documents/{manual['id']}/pages/{citation['page_start']}"
    opened = (await api.get(citation["url"])).json()
    assert opened["page"] == citation["page_start"]
    assert any(line in citation["text"] for line in opened["text"].splitlines())

    answer = await api.post("/v1/rag/answer", json={"question": "When do spring tides happen?"})
    passage = answer.json()["passages"][0]
    assert passage["page_start"] <= 3 <= passage["page_end"]
    assert passage["url"].startswith(f"/v1/documents/{manual['id']}/pages/")
