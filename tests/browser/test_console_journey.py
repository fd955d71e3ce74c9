"""Journeys across the console's pages in a real browser, through nginx in front of two
instances and an indexer: an answer asked in the playground is found on the runs page by a
word of its question and opens its run; moving a prompt's production label changes the
prompt the next answer uses; and a second tenant's admin sees none of the first tenant's
data on any page."""

from __future__ import annotations

import re
import uuid

import pytest
from litestar.testing import AsyncTestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from myaiserv.resources import Resources
from tests.browser.support import Browse, wait_for_element, wait_for_text
from tests.support import TenantKey, eventually, make_tenant, make_user

pytestmark = pytest.mark.browser

SYSTEM_PROMPT = (
    "Answer from the numbered sources only and cite them like [1]; "
    "say so when they do not hold the answer.\n\nSources:\n{context}"
)


async def indexed_document(api: AsyncTestClient, title: str, text: str) -> str:
    created = await api.post("/v1/documents", json={"title": title, "text": text})
    assert created.status_code == 201, created.text
    doc_id = str(created.json()["id"])

    async def indexed() -> bool:
        found = await api.get(f"/v1/documents/{doc_id}")
        return bool(found.json().get("index_status") == "indexed")

    assert await eventually(indexed), "the site's indexer did not index the document"
    return doc_id


def ask(browse: Browse, question: str, *, prompt: str = "", turn: int = 2) -> str:
    """Ask in the playground (already open); the answer's run id once it has streamed."""
    if prompt:
        Select(browse.find("#prompt")).select_by_value(prompt)
    browse.find("#question").send_keys(question)
    browse.find("#send").click()
    run = wait_for_element(browse.driver, f"#turns article:nth-of-type({turn}) a.run")
    match = re.search(r"/console/runs/([0-9a-f-]{36})$", run.get_attribute("href") or "")
    assert match, run.get_attribute("href")
    return match.group(1)


def search_runs(browse: Browse, words: str, run_id: str) -> None:
    """Search the runs page through its form until the run is there (it is searchable once
    the indexer has indexed it, a few seconds after the answer)."""
    for _ in range(30):
        browse.go("/console/runs")
        box = browse.find("#q")
        box.clear()
        box.send_keys(words)
        box.submit()
        wait_for_element(browse.driver, "main h1")
        if browse.driver.find_elements(By.CSS_SELECTOR, f"a[href='/console/runs/{run_id}']"):
            return
        browse.driver.execute_async_script("setTimeout(arguments[arguments.length - 1], 1000)")
    pytest.fail(f"run {run_id} not found by searching {words!r}")


async def test_a_playground_answer_is_found_on_the_runs_page_and_opens_its_run(
    browse: Browse, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    await indexed_document(
        api,
        "Lighthouses",
        "The Eddystone lighthouse stands on rocks south of Plymouth. Its lantern was "
        "first lit in 1882 and is visible for seventeen nautical miles.",
    )
    browse.login(await make_user(resources, tenant, "editor"))
    browse.go("/console/playground")
    run_id = ask(browse, "When was the Eddystone lantern first lit?")
    wait_for_text(browse.driver, "1882", "#turns article:nth-of-type(2)")

    search_runs(browse, "Eddystone", run_id)
    assert browse.driver.find_elements(By.CSS_SELECTOR, "main mark"), "no highlight"
    browse.find(f"a[href='/console/runs/{run_id}']").click()
    wait_for_text(browse.driver, "When was the Eddystone lantern first lit?", "main")
    page = browse.text("main")
    assert "1882" in page
    # The cited passage is one click away: its chunk, on its document's page.
    cited = browse.find("main a[href^='/console/chunks/']")
    cited.click()
    wait_for_text(browse.driver, "Eddystone lighthouse", "main")
    assert re.search(r"/console/documents/[0-9a-f-]{36}#chunk-", browse.driver.current_url)


async def test_moving_the_production_label_changes_the_prompt_of_the_next_answer(
    browse: Browse, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = f"support-{uuid.uuid4().hex[:6]}"
    created = await api.post("/v1/prompts", json={"name": name, "template": SYSTEM_PROMPT})
    assert created.status_code == 201, created.text
    prompt_id = created.json()["id"]
    second = await api.post(
        f"/v1/prompts/{prompt_id}/versions",
        json={"template": "Be brief. " + SYSTEM_PROMPT, "comment": "shorter answers"},
    )
    assert second.status_code == 201, second.text
    await indexed_document(
        api, "Tides", "Spring tides happen near the new and the full moon, twice a month."
    )
    browse.login(await make_user(resources, tenant, "editor"))

    browse.go("/console/playground")
    first_run = ask(browse, "When do spring tides happen?", prompt=name)
    browse.go(f"/console/runs/{first_run}")
    assert f"{name} version 1" in browse.text("main")

    browse.go(f"/console/prompts/{name}")
    browse.find("form.move-production button").click()  # the one version without it: v2
    wait_for_text(browse.driver, "now points at version 2", "main")

    browse.go("/console/playground")
    second_run = ask(browse, "When do spring tides happen?", prompt=name)
    browse.go(f"/console/runs/{second_run}")
    assert f"{name} version 2" in browse.text("main")
    # The API sees the move too, and the audit log holds it.
    labels = (await api.get(f"/v1/prompts/{prompt_id}")).json()["labels"]
    assert labels == {"production": 2}


async def test_a_second_tenant_sees_nothing_of_the_first_on_any_page(
    browse: Browse, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    marker = f"zanzibar{uuid.uuid4().hex[:6]}"
    doc_id = await indexed_document(
        api, f"Secret {marker}", f"The {marker} archive lists every shipment of cloves."
    )
    prompt = await api.post(
        "/v1/prompts", json={"name": f"p-{marker}", "template": f"{marker} {{context}}"}
    )
    assert prompt.status_code == 201, prompt.text
    owner = await make_user(resources, tenant, "admin")
    browse.login(owner)
    browse.go("/console/playground")
    run_id = ask(browse, f"What does the {marker} archive list?")
    conversation = re.search(r"conversation=([0-9a-f-]{36})", browse.driver.current_url)
    assert conversation, browse.driver.current_url
    search_runs(browse, marker, run_id)  # indexed, so a leak would show in searches
    browse.go(f"/console/runs/{run_id}")
    chunk = browse.find("main a[href^='/console/chunks/']").get_attribute("href") or ""
    browse.find("form.whoami button").click()
    browse.find("#email")

    other = await make_user(resources, await make_tenant(resources), "admin")
    browse.login(other)
    pages = [
        "/console/overview",
        f"/console/runs?q={marker}",
        "/console/runs",
        f"/console/documents?q={marker}",
        "/console/documents",
        "/console/prompts",
        "/console/playground",
        "/console/settings/keys",
        "/console/settings/users",
        "/console/settings/audit",
        "/console/settings/usage",
    ]
    for path in pages:
        browse.go(path)
        wait_for_element(browse.driver, "main")
        # Shown text only (a search box echoes its words), and no link to the first's.
        assert marker not in browse.text("main"), path
        source = browse.driver.page_source
        assert owner.email not in source and run_id not in source and doc_id not in source, path
    refused = [
        f"/console/runs/{run_id}",
        f"/console/documents/{doc_id}",
        chunk.removeprefix(browse.site.url),
        f"/console/prompts/p-{marker}",
        f"/console/playground?conversation={conversation.group(1)}",
    ]
    for path in refused:
        browse.go(path)
        wait_for_text(browse.driver, "404", "main h1")
        # The 404 may name what was asked for, never what the first tenant stored.
        assert "cloves" not in browse.driver.page_source, path
    browse.check("not-found")
