"""The playground in a real browser, through nginx: a question about an indexed document
is answered as a stream, with citations linking to the cited passages and a link to the
answer's run; the page is accessible with an answer on it and when empty."""

from __future__ import annotations

import re

import pytest
from litestar.testing import AsyncTestClient
from selenium.webdriver.common.by import By

from myaiserv.resources import Resources
from tests.browser.support import Browse, wait_for_element, wait_for_text
from tests.support import TenantKey, eventually, make_user

pytestmark = pytest.mark.browser

DOC = {
    "title": "Photosynthesis",
    "text": "Photosynthesis converts sunlight into chemical energy in plants. "
    "Chlorophyll in the leaves absorbs red and blue light. "
    "Oxygen is released as a by-product of splitting water.",
    "tags": ["biology"],
}


async def indexed_document(api: AsyncTestClient) -> str:
    """A document, created through the API and indexed by the site's indexer."""
    response = await api.post("/v1/documents", json=DOC)
    assert response.status_code == 201, response.text
    doc_id = str(response.json()["id"])

    async def indexed() -> bool:
        found = await api.get(f"/v1/documents/{doc_id}")
        return bool(found.json().get("index_status") == "indexed")

    assert await eventually(indexed), "the site's indexer did not index the document"
    return doc_id


async def test_an_answer_streams_in_with_its_citations_and_run(
    browse: Browse, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    doc_id = await indexed_document(api)
    browse.login(await make_user(resources, tenant, "editor"), to="/console/playground")
    browse.find("#question").send_keys("What does chlorophyll absorb?")
    browse.find("#send").click()
    wait_for_text(browse.driver, "Chlorophyll", ".turn.assistant .text")
    run = wait_for_element(browse.driver, ".turn.assistant a.run")
    assert re.search(r"/console/runs/[0-9a-f-]{36}$", run.get_attribute("href") or "")
    # The citation opens the cited passage (its chunk, on the document's page).
    cite = browse.find(".turn.assistant a.cite")
    assert cite.text == "[1]"
    assert f"/console/chunks/{doc_id}:" in (cite.get_attribute("href") or "")
    assert "Photosynthesis" in browse.text(".turn.assistant .sources")
    # The conversation goes on from here, and the address reopens it.
    assert "conversation=" in browse.driver.current_url
    assert browse.driver.find_element(By.ID, "conversation").get_attribute("value")
    assert browse.find("#question").get_attribute("value") == ""
    browse.check("playground")

    browse.find("#question").send_keys("What is released as a by-product?")
    browse.find("#send").click()
    # The fourth turn: the second answer, complete once its run is linked.
    wait_for_element(browse.driver, "#turns article:nth-of-type(4) a.run")
    browse.go(browse.driver.current_url.removeprefix(browse.site.url))
    assert "What is released as a by-product?" in browse.text("#turns")


async def test_the_empty_playground_says_what_to_do(
    browse: Browse, resources: Resources, tenant: TenantKey
) -> None:
    browse.login(await make_user(resources, tenant, "editor"), to="/console/playground")
    assert "No conversation yet" in browse.text(".empty")
    browse.check("playground-empty")
