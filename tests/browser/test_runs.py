"""The runs pages in a real browser, through nginx in front of two instances whose
indexer makes new runs searchable: find a run by a word of its input, open it, and both
pages (and the empty one) are accessible on a laptop and a phone."""

from __future__ import annotations

from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient
from selenium.webdriver.common.by import By

from myaiserv.resources import Resources
from tests.browser.support import Browse, wait_for_text
from tests.support import TenantKey, eventually, make_tenant, make_user

pytestmark = pytest.mark.browser


def search(browse: Browse, words: str) -> None:
    """Search as a person does: the words in the box, then the button."""
    browse.go("/console/runs")
    box = browse.find("#q")
    box.clear()
    box.send_keys(words)
    browse.driver.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    browse.find("h1")


async def test_find_a_run_by_a_word_of_its_input_and_open_it(
    browse: Browse, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    document = uuid4()
    for i, model in enumerate(("gpt-small", "gpt-large", "gpt-small")):
        logged = await api.post(
            "/v1/runs",
            json={
                "provider": "openai",
                "model": model,
                "input": f"background question number {i}",
                "output": "an answer",
                "status": "error" if i == 1 else "ok",
                "latency_ms": 100 + 50 * i,
                "prompt_tokens": 20,
                "completion_tokens": 10,
                "cost_usd": 0.001 * (i + 1),
            },
        )
        assert logged.status_code == 201, logged.text
    created = await api.post(
        "/v1/runs",
        json={
            "provider": "openai",
            "model": "gpt-small",
            "input": "How do echidnas lay eggs? <script>alert(1)</script>",
            "output": "Echidnas lay a single egg into a pouch.",
            "status": "ok",
            "latency_ms": 812.5,
            "time_to_first_token_ms": 120,
            "prompt_tokens": 42,
            "completion_tokens": 17,
            "cost_usd": 0.00042,
            "prompt_name": "support",
            "prompt_version": 2,
            "retrieved_chunk_ids": [f"{document}:0:aa", f"{document}:1:bb"],
            "cited_chunk_ids": [f"{document}:1:bb"],
            "metadata": {"team": "monotremes"},
        },
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    browse.login(await make_user(resources, tenant, "viewer"), to="/console/runs")

    link = f'a[href="/console/runs/{run_id}"]'

    async def found() -> bool:  # the site's own indexer makes it searchable
        search(browse, "echidnas")
        return bool(browse.driver.find_elements(By.CSS_SELECTOR, link))

    assert await eventually(found, within=60)
    assert browse.driver.current_url.endswith("/console/runs?q=echidnas")  # empty fields unsent
    assert "echidnas" in browse.text("mark").lower()
    assert "<script>alert(1)</script>" in browse.text("td.snippet")  # shown as text
    browse.check("runs")

    browse.find(link).click()
    wait_for_text(browse.driver, run_id, "h1")
    assert "Echidnas lay a single egg" in browse.text("pre.output")
    assert "cited" in browse.text("ul.chunks")
    assert "monotremes" in browse.text("pre.metadata")
    browse.check("run")


async def test_a_tenant_without_runs_is_told_how_to_log_them(
    browse: Browse, resources: Resources
) -> None:
    empty: TenantKey = await make_tenant(resources)
    browse.login(await make_user(resources, empty, "admin"), to="/console/runs")
    browse.go("/console/runs")
    assert "No runs yet" in browse.text(".empty")
    browse.check("runs-empty")
