"""The console's Prompts pages against the real stack: the list, a prompt's versions and
their diff, labels moved (and audited) through the API's service, the render preview,
forms that create prompts and versions, roles, CSRF, tenant isolation and escaping."""

from __future__ import annotations

import re
import uuid

import pytest
from litestar.testing import AsyncTestClient

from myaiserv.audit.log import AuditQuery, find
from myaiserv.prompts.service import NewPrompt, NewVersion, PromptService
from myaiserv.resources import Resources
from tests.support import ConsoleUser, TenantKey, console_login, csrf_field, make_tenant, make_user

pytestmark = pytest.mark.integration

V1 = "You answer questions.\nQuestion: {question}\nBe brief."
V2 = "You answer questions.\nQuestion in {language}: {question}\nBe brief.\nCite sources."


def unique(stem: str = "qa") -> str:
    return f"{stem}.{uuid.uuid4().hex[:8]}"


async def make_prompt(
    resources: Resources, tenant: TenantKey, *templates: str, name: str | None = None, **extra: str
) -> str:
    """A prompt with one version per template; production points at version 1."""
    name = name or unique()
    async with resources.sessionmaker() as session, session.begin():
        service = PromptService(session, tenant.id)
        prompt, _ = await service.create(
            NewPrompt(name=name, description=extra.get("description")),
            NewVersion(template=templates[0], labels=["production"]),
        )
        for template in templates[1:]:
            await service.add_version(prompt.id, NewVersion(template=template))
    return name


async def labels_via_api(api: AsyncTestClient, name: str) -> dict[str, int]:
    response = await api.get(f"/v1/prompts/by-name/{name}")
    assert response.status_code == 200, response.text
    labels: dict[str, int] = response.json()["labels"]
    return labels


def section(html: str, element_id: str) -> str:
    """The HTML of the <section> or <article> with this id (none are nested in another
    of the same kind)."""
    found = re.search(rf'<(section|article)[^>]*id="{element_id}".*?</\1>', html, re.DOTALL)
    assert found, f"no element #{element_id}"
    return found[0]


async def test_the_list_shows_each_prompt_with_its_latest_version_and_labels(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    first = await make_prompt(resources, tenant, V1)
    second = await make_prompt(resources, tenant, V1, V2)
    page = await console.get("/console/prompts")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    rows = re.findall(
        r"<tr>\s*<td><a href=\"/console/prompts/([^\"]+)\">.*?</tr>", page.text, re.DOTALL
    )
    assert rows == [second, first]  # newest first
    row = re.search(rf"{re.escape(second)}</a>.*?</tr>", page.text, re.DOTALL)
    assert row and "<td>2</td>" in row[0] and "production → v1" in row[0]
    assert 'action="/console/prompts"' in page.text  # an admin may create one


async def test_the_list_pages_with_the_api_cursor(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    names = [await make_prompt(resources, tenant, V1) for _ in range(21)]
    first = await console.get("/console/prompts")
    assert names[0] not in first.text and names[-1] in first.text
    next_url = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert next_url
    second = await console.get(next_url[1].replace("&amp;", "&"))
    assert second.status_code == 200 and names[0] in second.text
    assert names[-1] not in second.text and 'rel="next"' not in second.text


async def test_an_empty_list_says_how_to_create_one(
    console: AsyncTestClient, visitor: AsyncTestClient
) -> None:
    page = await console.get("/console/prompts")
    assert "No prompts yet" in page.text and "POST /v1/prompts" in page.text
    assert "<table" not in page.text


async def test_a_prompt_created_with_the_form_is_the_api_s(
    console: AsyncTestClient, api: AsyncTestClient
) -> None:
    name = unique()
    form = {
        "name": name,
        "description": "Grounded answers",
        "template": "Hello {who},\r\nwelcome.",
        "variables": "",
        "model_parameters": '{"temperature": 0.2}',
        "comment": "first cut",
        "labels": "production",
        **csrf_field(console),
    }
    created = await console.post("/console/prompts", data=form)
    assert created.status_code == 303
    assert created.headers["location"] == f"/console/prompts/{name}?done=created"
    prompt = (await api.get(f"/v1/prompts/by-name/{name}")).json()
    assert prompt["labels"] == {"production": 1}
    assert prompt["latest"]["template"] == "Hello {who},\nwelcome."
    assert prompt["latest"]["variables"] == ["who"]
    assert prompt["latest"]["model_parameters"] == {"temperature": 0.2}
    shown = await console.get(created.headers["location"])
    assert f"Prompt {name} created." in shown.text
    # The same name again, and a template the API refuses: the form again, errors by fields.
    again = await console.post("/console/prompts", data=form)
    assert again.status_code == 400
    assert 'id="name-error"' in again.text and "already has a prompt named" in again.text
    assert f'value="{name}"' in again.text  # what was typed stays
    broken = await console.post(
        "/console/prompts", data={**form, "name": unique(), "template": "Hi {who.name}"}
    )
    assert broken.status_code == 400
    assert 'id="template-error"' in broken.text and "attribute access is not allowed" in broken.text


async def test_a_prompt_page_shows_its_versions_and_the_latest_change(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1, V2)
    page = await console.get(f"/console/prompts/{name}")
    assert page.status_code == 200
    v1, v2 = section(page.text, "v1"), section(page.text, "v2")
    assert "Question: {question}" in v1 and "Cite sources." in v2
    assert '<span class="badge ok">production</span>' in v1
    assert "Move production here" in v2 and "Move production here" not in v1
    diff = section(page.text, "diff")
    assert "From version 1 to version 2" in diff
    assert re.search(r"<del>.*?Question: \{question\}</del>", diff)
    assert re.search(r"<ins>.*?Question in \{language\}: \{question\}</ins>", diff)
    assert re.search(r"<ins>.*?Cite sources.</ins>", diff)
    assert re.search(r'<span class="same">.*?Be brief.</span>', diff)


async def test_a_diff_between_any_two_versions(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1, V2, "Only {question}")
    page = await console.get(f"/console/prompts/{name}?from=1&to=3")
    diff = section(page.text, "diff")
    assert "From version 1 to version 3" in diff
    assert re.search(r"<ins>.*?Only \{question\}</ins>", diff)
    assert "Cite sources." not in diff  # version 2 is not in this comparison
    same = await console.get(f"/console/prompts/{name}?from=2&to=2")
    assert "the templates are the same" in section(same.text, "diff")
    missing = await console.get(f"/console/prompts/{name}?from=1&to=9")
    assert "has no version 9" in section(missing.text, "diff")
    assert (await console.get(f"/console/prompts/{name}?from=0")).status_code == 400


async def test_moving_production_is_the_api_s_label_move_and_is_audited(
    console: AsyncTestClient,
    api: AsyncTestClient,
    resources: Resources,
    tenant: TenantKey,
    console_user: ConsoleUser,
) -> None:
    name = await make_prompt(resources, tenant, V1, V2)
    form = {"label": "production", "version": "2", **csrf_field(console)}
    moved = await console.post(f"/console/prompts/{name}/labels", data=form)
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/console/prompts/{name}?moved=production#labels"
    assert await labels_via_api(api, name) == {"production": 2}
    async with resources.sessionmaker() as session:
        events, _ = await find(session, AuditQuery(tenant_id=tenant.id, action="prompt.label_set"))
    latest = events[0]
    assert latest.actor == f"user:{console_user.email}"
    assert latest.target == f"prompt:{name}:production"
    assert latest.details is not None
    assert (latest.details["from_version"], latest.details["to_version"]) == (1, 2)
    page = await console.get(moved.headers["location"])
    assert "Label production now points at version 2." in page.text
    assert "Move production here" in section(page.text, "v1")
    assert "Move production here" not in section(page.text, "v2")


async def test_any_label_can_be_moved_and_bad_input_is_named(
    console: AsyncTestClient, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1, V2)
    url = f"/console/prompts/{name}/labels"
    staging = await console.post(
        url, data={"label": "staging", "version": "1", **csrf_field(console)}
    )
    assert staging.status_code == 303
    assert await labels_via_api(api, name) == {"production": 1, "staging": 1}
    no_such = await console.post(
        url, data={"label": "staging", "version": "9", **csrf_field(console)}
    )
    assert no_such.status_code == 400
    assert 'id="version-error"' in no_such.text and "has no version 9" in no_such.text
    bad = await console.post(url, data={"label": "Not OK", "version": "2", **csrf_field(console)})
    assert bad.status_code == 400 and 'id="label-error"' in bad.text
    nan = await console.post(
        url, data={"label": "staging", "version": "two", **csrf_field(console)}
    )
    assert nan.status_code == 400 and 'id="version-error"' in nan.text
    assert await labels_via_api(api, name) == {"production": 1, "staging": 1}


async def test_a_new_version_from_the_form(
    console: AsyncTestClient, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1)
    form = {"template": V2, "comment": "with a language", "labels": "", **csrf_field(console)}
    added = await console.post(f"/console/prompts/{name}/versions", data=form)
    assert added.status_code == 303
    prompt = (await api.get(f"/v1/prompts/by-name/{name}")).json()
    assert prompt["latest_version"] == 2 and prompt["labels"] == {"production": 1}
    assert prompt["latest"]["variables"] == ["language", "question"]
    refused = await console.post(
        f"/console/prompts/{name}/versions", data={**form, "variables": "question"}
    )
    assert refused.status_code == 400
    assert "used in the template but not declared: language" in refused.text


async def test_the_render_preview_fills_the_variables_or_names_the_missing_one(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1, V2)
    page = await console.get(f"/console/prompts/{name}")
    preview = section(page.text, "preview")  # production's version by default
    assert "Preview version 1" in preview and 'name="variables.question"' in preview
    url = f"/console/prompts/{name}/render"
    form = {"version": "2", "variables.question": "Why?", "variables.language": "French"}
    rendered = await console.post(url, data={**form, **csrf_field(console)})
    assert rendered.status_code == 200
    assert "Question in French: Why?" in section(rendered.text, "preview")
    blank = await console.post(url, data={**form, "variables.language": "", **csrf_field(console)})
    assert blank.status_code == 400
    shown = section(blank.text, "preview")
    assert "variables.language</span>: missing" in shown
    assert 'id="variables.language-error"' in shown
    assert 'value="2"' in shown and ">Why?</textarea>" in shown  # the form as it was sent


async def test_another_tenant_s_prompt_is_not_found(
    visitor: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1, V2)
    other = await make_user(resources, await make_tenant(resources), "admin")
    await console_login(visitor, other)
    listed = await visitor.get("/console/prompts")
    assert listed.status_code == 200 and name not in listed.text
    assert (await visitor.get(f"/console/prompts/{name}")).status_code == 404
    for action, form in (
        ("labels", {"label": "production", "version": "2"}),
        ("versions", {"template": "stolen"}),
        ("render", {"version": "1", "variables.question": "x"}),
    ):
        response = await visitor.post(
            f"/console/prompts/{name}/{action}", data={**form, **csrf_field(visitor)}
        )
        assert response.status_code == 404, action
    async with resources.sessionmaker() as session:
        prompt = await PromptService(session, tenant.id).get_by_name(name)
    assert prompt.labels == {"production": 1} and prompt.latest_version == 2


async def test_a_viewer_reads_but_cannot_write(
    visitor: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1, V2)
    await console_login(visitor, await make_user(resources, tenant, "viewer"))
    listed = await visitor.get("/console/prompts")
    assert name in listed.text and "New prompt" not in listed.text
    page = await visitor.get(f"/console/prompts/{name}")
    assert page.status_code == 200
    assert "Move production here" not in page.text and "Move label" not in page.text
    assert "New version" not in page.text
    for url, form in (
        ("/console/prompts", {"name": unique(), "template": "x"}),
        (f"/console/prompts/{name}/labels", {"label": "production", "version": "2"}),
        (f"/console/prompts/{name}/versions", {"template": "x"}),
    ):
        response = await visitor.post(url, data={**form, **csrf_field(visitor)})
        assert response.status_code == 403, url
    form = {"version": "1", "variables.question": "Why?", **csrf_field(visitor)}
    preview = await visitor.post(f"/console/prompts/{name}/render", data=form)
    assert preview.status_code == 200 and "Question: Why?" in preview.text  # a read
    async with resources.sessionmaker() as session:
        prompt = await PromptService(session, tenant.id).get_by_name(name)
    assert prompt.labels == {"production": 1}


async def test_a_label_move_without_the_csrf_token_is_refused(
    console: AsyncTestClient, api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    name = await make_prompt(resources, tenant, V1, V2)
    url = f"/console/prompts/{name}/labels"
    missing = await console.post(url, data={"label": "production", "version": "2"})
    assert missing.status_code == 403
    forged = {"label": "production", "version": "2", "_csrf_token": "0" * 128}
    assert (await console.post(url, data=forged)).status_code == 403
    assert await labels_via_api(api, name) == {"production": 1}


async def test_user_text_is_escaped_everywhere(
    console: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    attack = "<script>alert(1)</script>"
    name = await make_prompt(
        resources, tenant, f"Hi {{who}} {attack}", f"Bye {{who}} {attack}", description=attack
    )
    listed = await console.get("/console/prompts")
    page = await console.get(f"/console/prompts/{name}")
    form = {"version": "2", "variables.who": attack, **csrf_field(console)}
    rendered = await console.post(f"/console/prompts/{name}/render", data=form)
    for html in (listed.text, page.text, rendered.text):
        assert attack not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert re.search(r"<ins>.*?Bye \{who\} &lt;script&gt;", section(page.text, "diff"))
    assert "Bye &lt;script&gt;alert(1)&lt;/script&gt; &lt;script&gt;" in rendered.text
