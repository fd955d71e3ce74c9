"""The Prompts pages in a real browser, through nginx: the list, a prompt with two versions
and the diff between them, production moved with one click, a render preview, and the
empty list; each page accessible on a laptop and a phone."""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.common.by import By

from myaiserv.prompts.service import NewPrompt, NewVersion, PromptService
from myaiserv.resources import Resources
from tests.browser.support import Browse, wait_for_text
from tests.support import ConsoleUser, TenantKey, make_tenant, make_user

pytestmark = pytest.mark.browser

V1 = "You answer questions.\nQuestion: {question}\nBe brief."
V2 = "You answer questions.\nQuestion in {language}: {question}\nBe brief."


async def two_versions(resources: Resources, tenant: TenantKey) -> str:
    name = f"qa.{uuid.uuid4().hex[:8]}"
    async with resources.sessionmaker() as session, session.begin():
        service = PromptService(session, tenant.id)
        prompt, _ = await service.create(
            NewPrompt(name=name, description="Grounded answers <b>for</b> support"),
            NewVersion(template=V1, labels=["production"]),
        )
        await service.add_version(prompt.id, NewVersion(template=V2, comment="adds a language"))
    return name


async def test_a_prompt_s_versions_diff_label_move_and_preview(
    browse: Browse, resources: Resources, tenant: TenantKey, console_user: ConsoleUser
) -> None:
    name = await two_versions(resources, tenant)
    browse.login(console_user, to="/console/prompts")
    assert name in browse.text("table.prompts")
    browse.check("prompts")

    browse.driver.find_element(By.LINK_TEXT, name).click()
    wait_for_text(browse.driver, f"Prompt {name}", "h1")
    browse.find("#v2 a[href*='from=1']").click()  # the changes version 2 made
    wait_for_text(browse.driver, "From version 1 to version 2", "#diff")
    assert "Question in {language}: {question}" in browse.text("#diff ins")
    assert "Question: {question}" in browse.text("#diff del")
    browse.check("prompt")

    browse.find("#v2 form.move-production button").click()
    wait_for_text(browse.driver, "Label production now points at version 2.", ".notice")
    assert "production" in browse.text("#v2 header")
    assert browse.driver.find_elements(By.CSS_SELECTOR, "#v2 form.move-production") == []
    assert browse.driver.find_elements(By.CSS_SELECTOR, "#v1 form.move-production")

    # The preview defaults to production's version, now 2: it takes both variables.
    wait_for_text(browse.driver, "Preview version 2", "#preview h2")
    browse.find("#var-question").send_keys("Why is the sky blue?")
    browse.find(".render-form button").click()
    wait_for_text(browse.driver, "variables.language: missing", "#preview div.error")
    browse.find("#var-language").send_keys("French")
    browse.find(".render-form button").click()
    rendered = wait_for_text(browse.driver, "Question in French", "#preview pre.rendered")
    assert "Question in French: Why is the sky blue?" in rendered.text
    browse.check("prompt-preview")


async def test_an_empty_prompt_list_says_what_to_do(browse: Browse, resources: Resources) -> None:
    user = await make_user(resources, await make_tenant(resources), "editor")
    browse.login(user, to="/console/prompts")
    assert "No prompts yet" in browse.text(".empty")
    assert browse.find("form[action='/console/prompts'] #new-name")
    browse.check("prompts-empty")
