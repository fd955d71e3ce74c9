"""The Documents pages in a real browser, on the served console (two instances, an indexer,
nginx): a PDF uploaded through the file input shows its progress and becomes ``indexed``
on the page, a search finds it with a highlight, its page shows its chunks; every page
accessible at laptop and phone sizes, empty or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from myaiserv.resources import Resources
from tests.browser.support import Browse, wait_for_element, wait_for_text
from tests.support import TenantKey, make_user
from tests.unit.extract.test_extract import make_pdf

pytestmark = pytest.mark.browser

# The indexer embeds on two shared cores: give it time.
INDEXED_WITHIN_S = 90.0


async def test_without_documents_the_page_says_to_upload(
    browse: Browse, resources: Resources, tenant: TenantKey
) -> None:
    browse.login(await make_user(resources, tenant, "editor"), to="/console/documents")
    assert "No documents yet" in browse.text(".empty")
    assert browse.find("#files").get_attribute("multiple") is not None
    browse.check("documents-empty")


async def test_upload_a_pdf_watch_it_indexed_find_it_and_open_it(
    browse: Browse, resources: Resources, tenant: TenantKey, tmp_path: Path
) -> None:
    pdf = tmp_path / "marsupials.pdf"
    pdf.write_bytes(
        make_pdf(
            ["Field notes: the numbat forages for termites at dawn.", "Second page of notes."],
            title="Numbat field notes",
        )
    )
    browse.login(await make_user(resources, tenant, "editor"), to="/console/documents")
    browse.find("#files").send_keys(str(pdf))
    browse.driver.find_element(By.CSS_SELECTOR, "#upload button[type=submit]").click()

    # The script sends it with a progress bar, then follows its index status.
    row = browse.find("#uploads .upload-item")
    assert "marsupials.pdf" in row.text
    assert row.find_element(By.TAG_NAME, "progress") is not None
    wait_for_text(browse.driver, "indexed", "#uploads .badge", timeout=INDEXED_WITHIN_S)
    assert "Numbat field notes" in browse.text("#uploads")
    browse.check("documents-uploaded")

    # Found by a word of it, the word highlighted.
    browse.find("#q").send_keys("numbat")
    browse.driver.find_element(By.CSS_SELECTOR, "form[role=search] button").click()
    mark = browse.find(".hit mark")
    assert mark.text.lower() == "numbat"
    browse.check("documents")

    # Its page: status, chunks, the passage the hit pointed at.
    browse.driver.find_element(By.CSS_SELECTOR, ".hit h3 a").click()
    wait_for_element(browse.driver, ".chunk")
    assert "Numbat field notes" in browse.text("h1")
    assert browse.text("dl.facts .badge") == "indexed"
    assert "forages for termites" in browse.text(".chunks")
    assert browse.driver.current_url.split("#", 1)[1].startswith("chunk-")
    browse.check("document")
