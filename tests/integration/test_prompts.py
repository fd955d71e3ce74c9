"""Prompts through the API: versions, labels, rendering, the outbox into Elasticsearch,
tenant isolation, and bad input that must never become a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from myaiserv.db.models import OutboxEvent, PromptVersion
from myaiserv.prompts.service import PromptService
from myaiserv.resources import Resources
from tests.support import TenantKey, drain, make_tenant

pytestmark = pytest.mark.integration

V1 = 'Answer the question {question} using only:\n{context}\nReply as {{"answer": ...}}.'
V2 = "Q: {question}\nContext: {context}\nBe brief."


def unique_name(stem: str = "qa") -> str:
    return f"{stem}.{uuid.uuid4().hex[:8]}"


async def indexed(resources: Resources, tenant: TenantKey, prompt_id: str) -> list[dict]:
    resp = await resources.es.search(
        index=resources.indices.alias("prompts"),
        query={
            "bool": {
                "filter": [
                    {"term": {"tenant_id": str(tenant.id)}},
                    {"term": {"prompt_id": prompt_id}},
                ]
            }
        },
        source_excludes=["embedding"],
        version=True,
    )
    return [{"_version": h["_version"], **h["_source"]} for h in resp["hits"]["hits"]]


async def outbox_rows(resources: Resources, prompt_id: str) -> list[tuple[str, int]]:
    async with resources.sessionmaker() as session:
        rows = await session.execute(
            select(OutboxEvent.op, OutboxEvent.version)
            .where(OutboxEvent.kind == "prompts", OutboxEvent.entity_id == uuid.UUID(prompt_id))
            .order_by(OutboxEvent.id)
        )
        return [(op, version) for op, version in rows]


async def create(api: AsyncTestClient, **body: Any) -> dict:
    body = {"name": unique_name(), "template": V1, **body}
    resp = await api.post("/v1/prompts", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_prompt_lifecycle(api: AsyncTestClient, tenant: TenantKey, resources: Resources):
    name = unique_name()
    resp = await api.post(
        "/v1/prompts",
        json={
            "name": name,
            "description": "Grounded answers",
            "tags": ["rag", "qa", "rag"],
            "template": V1,
            "model_parameters": {"temperature": 0.2, "max_tokens": 300},
            "comment": "first cut",
        },
    )
    assert resp.status_code == 201, resp.text
    prompt = resp.json()
    pid = prompt["id"]
    assert prompt["name"] == name and prompt["tags"] == ["rag", "qa"]
    assert prompt["labels"] == {"production": 1}
    assert prompt["latest_version"] == 1 and prompt["version"] == 1
    v1 = prompt["latest"]
    assert v1["number"] == 1 and v1["template"] == V1
    assert v1["variables"] == ["question", "context"]  # inferred, in order of use
    assert v1["model_parameters"] == {"temperature": 0.2, "max_tokens": 300}
    assert v1["comment"] == "first cut" and v1["labels"] == ["production"]
    assert await outbox_rows(resources, pid) == [("upsert", 1)]

    got = await api.get(f"/v1/prompts/{pid}")
    assert got.status_code == 200 and got.json()["latest"]["template"] == V1
    by_name = await api.get(f"/v1/prompts/by-name/{name}")
    assert by_name.status_code == 200 and by_name.json()["id"] == pid

    await drain(resources)
    [doc] = await indexed(resources, tenant, pid)
    assert doc["name"] == name and doc["template"] == V1 and doc["indexed_version"] == 1
    assert doc["version"] == 1 and doc["_version"] == 1
    assert doc["labels"] == ["production=1"] and doc["variables"] == ["question", "context"]

    # A new version: production stays on 1, staging points at 2.
    resp = await api.post(
        f"/v1/prompts/{pid}/versions",
        json={"template": V2, "variables": ["context", "question"], "labels": ["staging"]},
    )
    assert resp.status_code == 201, resp.text
    v2 = resp.json()
    assert v2["number"] == 2 and v2["labels"] == ["staging"]
    assert v2["variables"] == ["context", "question"]  # as declared
    got = (await api.get(f"/v1/prompts/{pid}")).json()
    assert got["labels"] == {"production": 1, "staging": 2}
    assert got["latest_version"] == 2 and got["version"] == 2
    assert got["latest"]["number"] == 2

    variables = {"question": "Why is the sea salty?", "context": "Rivers carry minerals."}
    rendered = await api.post(f"/v1/prompts/{pid}/render", json={"variables": variables})
    assert rendered.status_code == 200, rendered.text
    assert rendered.json() == {
        "text": V1.format(**variables),
        "prompt_id": pid,
        "name": name,
        "version": 1,
    }
    assert '{"answer": ...}' in rendered.json()["text"]
    pinned = await api.post(
        f"/v1/prompts/{pid}/render", json={"variables": variables, "version": 2}
    )
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["text"] == V2.format(**variables) and pinned.json()["version"] == 2
    staged = await api.post(
        f"/v1/prompts/{pid}/render", json={"variables": variables, "label": "staging"}
    )
    assert staged.json()["version"] == 2

    missing = await api.post(
        f"/v1/prompts/{pid}/render", json={"variables": {"context": "only context"}}
    )
    assert missing.status_code == 422, missing.text
    assert missing.headers["content-type"].startswith("application/problem+json")
    body = missing.json()
    assert body["detail"] == "variables.question: missing"
    assert body["errors"] == [{"field": "variables.question", "message": "missing"}]

    await drain(resources)
    [doc] = await indexed(resources, tenant, pid)
    assert doc["template"] == V1, "the index follows the production label, not the latest"
    assert doc["version"] == 2 and doc["_version"] == 2 and doc["latest_version"] == 2

    # Moving production re-indexes the prompt with version 2's template.
    moved = await api.put(f"/v1/prompts/{pid}/labels/production", json={"version": 2})
    assert moved.status_code == 200, moved.text
    assert moved.json()["labels"] == {"production": 2, "staging": 2}
    assert moved.json()["version"] == 3
    same = await api.put(f"/v1/prompts/{pid}/labels/production", json={"version": 2})
    assert same.status_code == 200 and same.json()["version"] == 3  # no change, no bump
    assert await outbox_rows(resources, pid) == [("upsert", 3)]
    rendered = await api.post(f"/v1/prompts/{pid}/render", json={"variables": variables})
    assert rendered.json()["version"] == 2 and rendered.json()["text"] == V2.format(**variables)

    await drain(resources)
    [doc] = await indexed(resources, tenant, pid)
    assert doc["template"] == V2 and doc["indexed_version"] == 2
    assert doc["version"] == 3 and doc["_version"] == 3
    assert doc["labels"] == ["production=2", "staging=2"]

    # The RAG side resolves by name.
    async with resources.sessionmaker() as session:
        service = PromptService(session, tenant.id)
        assert (await service.resolve(name)).number == 2
        assert (await service.resolve(name, version=1)).template == V1
        latest = await service.resolve(name, label=None)
        assert latest.number == 2 and latest.prompt.name == name

    versions = await api.get(f"/v1/prompts/{pid}/versions")
    assert [v["number"] for v in versions.json()["items"]] == [2, 1]
    assert versions.json()["items"][1]["labels"] == []
    page = (await api.get(f"/v1/prompts/{pid}/versions", params={"limit": 1})).json()
    assert [v["number"] for v in page["items"]] == [2] and page["next_cursor"]
    rest = await api.get(
        f"/v1/prompts/{pid}/versions", params={"limit": 1, "cursor": page["next_cursor"]}
    )
    assert [v["number"] for v in rest.json()["items"]] == [1]
    assert rest.json()["next_cursor"] is None
    one = await api.get(f"/v1/prompts/{pid}/versions/1")
    assert one.status_code == 200 and one.json()["template"] == V1

    patched = await api.patch(f"/v1/prompts/{pid}", json={"description": None, "tags": ["x"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] is None and patched.json()["tags"] == ["x"]
    assert patched.json()["version"] == 4

    removed = await api.delete(f"/v1/prompts/{pid}/labels/staging")
    assert removed.status_code == 204
    got = (await api.get(f"/v1/prompts/{pid}")).json()
    assert got["labels"] == {"production": 2} and got["version"] == 5
    assert (await api.delete(f"/v1/prompts/{pid}/labels/staging")).status_code == 404
    gone_label = await api.post(
        f"/v1/prompts/{pid}/render", json={"variables": variables, "label": "staging"}
    )
    assert gone_label.status_code == 404

    await drain(resources)
    [doc] = await indexed(resources, tenant, pid)
    assert doc["version"] == 5 and doc["tags"] == ["x"] and doc["labels"] == ["production=2"]

    deleted = await api.delete(f"/v1/prompts/{pid}")
    assert deleted.status_code == 204
    assert await outbox_rows(resources, pid) == [("delete", 6)]
    assert (await api.get(f"/v1/prompts/{pid}")).status_code == 404
    assert (await api.get(f"/v1/prompts/{pid}/versions/1")).status_code == 404
    assert (await api.get(f"/v1/prompts/by-name/{name}")).status_code == 404
    assert (await api.delete(f"/v1/prompts/{pid}")).status_code == 404
    async with resources.sessionmaker() as session:
        left = await session.scalar(
            select(func.count())
            .select_from(PromptVersion)
            .where(PromptVersion.prompt_id == uuid.UUID(pid))
        )
    assert left == 0, "versions did not cascade"
    await drain(resources)
    assert await indexed(resources, tenant, pid) == []


async def test_create_with_labels_and_list(api: AsyncTestClient, tenant: TenantKey):
    tag = f"tag-{uuid.uuid4().hex[:6]}"
    unlabeled = await create(api, labels=[], tags=[tag], template="no variables")
    assert unlabeled["labels"] == {} and unlabeled["latest"]["variables"] == []
    both = await create(api, labels=["production", "canary"], tags=[tag])
    assert both["labels"] == {"production": 1, "canary": 1}
    await create(api)

    # Without a production label, rendering by default is a 404; a pinned version works.
    resp = await api.post(f"/v1/prompts/{unlabeled['id']}/render", json={})
    assert resp.status_code == 404
    resp = await api.post(f"/v1/prompts/{unlabeled['id']}/render", json={"version": 1})
    assert resp.status_code == 200 and resp.json()["text"] == "no variables"

    listed = await api.get("/v1/prompts", params={"tag": tag})
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["items"]] == [both["id"], unlabeled["id"]]
    assert all(p["latest"] is None for p in listed.json()["items"])
    first = (await api.get("/v1/prompts", params={"limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (
        await api.get("/v1/prompts", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [p["id"] for p in second["items"]] == [unlabeled["id"]]
    assert second["next_cursor"] is None


async def test_tenant_isolation(
    api: AsyncTestClient, tenant: TenantKey, resources: Resources
) -> None:
    mine = await create(api)
    pid, name = mine["id"], mine["name"]
    other = await make_tenant(resources)
    h = other.headers
    variables = {"question": "q", "context": "c"}
    for method, path, body in [
        ("GET", f"/v1/prompts/{pid}", None),
        ("GET", f"/v1/prompts/by-name/{name}", None),
        ("GET", f"/v1/prompts/{pid}/versions", None),
        ("GET", f"/v1/prompts/{pid}/versions/1", None),
        ("POST", f"/v1/prompts/{pid}/render", {"variables": variables}),
        ("POST", f"/v1/prompts/{pid}/versions", {"template": "stolen"}),
        ("PATCH", f"/v1/prompts/{pid}", {"description": "stolen"}),
        ("PUT", f"/v1/prompts/{pid}/labels/production", {"version": 1}),
        ("DELETE", f"/v1/prompts/{pid}/labels/production", None),
        ("DELETE", f"/v1/prompts/{pid}", None),
    ]:
        resp = await api.request(method, path, json=body, headers=h)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
    listed = await api.get("/v1/prompts", headers=h)
    assert listed.status_code == 200 and listed.json()["items"] == []
    async with resources.sessionmaker() as session:
        with pytest.raises(Exception, match="not found"):
            await PromptService(session, other.id).resolve(name)

    # Names are unique per tenant only.
    theirs = await api.post("/v1/prompts", json={"name": name, "template": "x"}, headers=h)
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != pid

    # Untouched for its owner, and each tenant sees only its own in the index.
    got = (await api.get(f"/v1/prompts/{pid}")).json()
    assert got["version"] == 1 and got["labels"] == {"production": 1}
    await drain(resources)
    assert len(await indexed(resources, tenant, pid)) == 1
    assert await indexed(resources, other, pid) == []

    reader = await make_tenant(resources, scopes=["read"])
    rh = reader.headers
    assert (await api.get("/v1/prompts", headers=rh)).status_code == 200
    denied = await api.post("/v1/prompts", json={"name": "x", "template": "x"}, headers=rh)
    assert denied.status_code == 403


NUL = "a\x00b"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, None),
        ({"name": "only-a-name"}, 400, None),
        ({"name": 123, "template": "x"}, 400, None),
        ({"name": "x", "template": 5}, 400, None),
        ({"name": "x", "template": "x", "surprise": 1}, 400, None),
        ({"name": "", "template": "x"}, 400, None),
        ({"name": "-leading", "template": "x"}, 400, None),
        ({"name": "has space", "template": "x"}, 400, None),
        ({"name": "a/b", "template": "x"}, 400, None),
        ({"name": "trailing\n", "template": "x"}, 400, None),
        ({"name": "ü", "template": "x"}, 400, None),
        ({"name": "n" * 201, "template": "x"}, 400, None),
        ({"name": NUL, "template": "x"}, 400, None),
        ({"name": "x", "template": ""}, 400, None),
        ({"name": "x", "template": "x", "tags": "rag"}, 400, None),
        ({"name": "x", "template": "x", "labels": "production"}, 400, None),
        ({"name": "x", "template": "x", "labels": ["Production"]}, 400, None),
        ({"name": "x", "template": "x", "labels": ["prod\n"]}, 400, None),
        ({"name": "x", "template": "x", "model_parameters": [1]}, 400, None),
        ({"name": "x", "template": "x", "variables": "a"}, 400, None),
        ({"name": "x", "template": "{a.b}"}, 422, "template"),
        ({"name": "x", "template": "{a[0]}"}, 422, "template"),
        ({"name": "x", "template": "{0}"}, 422, "template"),
        ({"name": "x", "template": "{}"}, 422, "template"),
        ({"name": "x", "template": "{a!r}"}, 422, "template"),
        ({"name": "x", "template": "{a:>4}"}, 422, "template"),
        ({"name": "x", "template": "unclosed {a"}, 422, "template"),
        ({"name": "x", "template": "stray }"}, 422, "template"),
        ({"name": "x", "template": NUL}, 422, "template"),
        ({"name": "x", "template": "{a}", "variables": ["a", "b"]}, 422, "variables"),
        ({"name": "x", "template": "{a} {b}", "variables": ["a"]}, 422, "variables"),
        ({"name": "x", "template": "x", "description": NUL}, 422, "description"),
        ({"name": "x", "template": "x", "tags": [NUL]}, 422, "tags[0]"),
        ({"name": "x", "template": "x", "comment": NUL}, 422, "comment"),
        ({"name": "x", "template": "x", "model_parameters": {"k": NUL}}, 422, "model_parameters.k"),
    ],
)
async def test_create_rejects_bad_input(
    api: AsyncTestClient, body: dict, status: int, field: str | None
) -> None:
    if isinstance(body.get("name"), str) and body["name"] == "x":
        body = {**body, "name": unique_name("bad")}
    resp = await api.post("/v1/prompts", json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert field in [e["field"] for e in resp.json()["errors"]], resp.text
        assert resp.json()["detail"].startswith(f"{field}: ")


async def test_bad_requests_never_fail_the_server(api: AsyncTestClient) -> None:
    prompt = await create(api)
    pid = prompt["id"]
    missing = uuid.uuid4()
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "/v1/prompts", b"", 400),
        ("POST", "/v1/prompts", b"not json", 400),
        ("POST", "/v1/prompts", b"[]", 400),
        ("POST", "/v1/prompts", {"name": prompt["name"], "template": "again"}, 409),
        ("GET", "/v1/prompts?cursor=garbage", None, 422),
        ("GET", "/v1/prompts?limit=0", None, 400),
        ("GET", "/v1/prompts?tag=a%00b", None, 422),
        ("GET", "/v1/prompts/not-a-uuid", None, 404),
        ("GET", f"/v1/prompts/{missing}", None, 404),
        ("GET", "/v1/prompts/by-name/no.such.prompt", None, 404),
        ("GET", "/v1/prompts/by-name/bad%00name", None, 404),
        ("GET", "/v1/prompts/by-name/" + "n" * 500, None, 404),
        ("PATCH", f"/v1/prompts/{pid}", {}, 422),
        ("PATCH", f"/v1/prompts/{pid}", {"name": "renamed"}, 400),
        ("PATCH", f"/v1/prompts/{pid}", {"tags": "x"}, 400),
        ("PATCH", f"/v1/prompts/{pid}", {"description": NUL}, 422),
        ("PATCH", f"/v1/prompts/{missing}", {"description": "d"}, 404),
        ("POST", f"/v1/prompts/{pid}/versions", b"", 400),
        ("POST", f"/v1/prompts/{pid}/versions", {}, 400),
        ("POST", f"/v1/prompts/{pid}/versions", {"template": "x", "name": "y"}, 400),
        ("POST", f"/v1/prompts/{pid}/versions", {"template": "{x.y}"}, 422),
        ("POST", f"/v1/prompts/{pid}/versions", {"template": NUL}, 422),
        ("POST", f"/v1/prompts/{pid}/versions", {"template": "x", "labels": ["BAD"]}, 400),
        ("POST", f"/v1/prompts/{missing}/versions", {"template": "x"}, 404),
        ("GET", f"/v1/prompts/{pid}/versions?cursor=abc", None, 422),
        ("GET", f"/v1/prompts/{pid}/versions?cursor=99999999999999999999", None, 422),
        ("GET", f"/v1/prompts/{pid}/versions/0", None, 400),
        ("GET", f"/v1/prompts/{pid}/versions/99", None, 404),
        ("GET", f"/v1/prompts/{pid}/versions/99999999999999", None, 400),
        ("GET", f"/v1/prompts/{pid}/versions/one", None, 404),
        ("PUT", f"/v1/prompts/{pid}/labels/production", {}, 400),
        ("PUT", f"/v1/prompts/{pid}/labels/production", {"version": "two"}, 400),
        ("PUT", f"/v1/prompts/{pid}/labels/production", {"version": 0}, 400),
        ("PUT", f"/v1/prompts/{pid}/labels/production", {"version": 2**40}, 400),
        ("PUT", f"/v1/prompts/{pid}/labels/production", {"version": 99}, 404),
        ("PUT", f"/v1/prompts/{pid}/labels/Prod", {"version": 1}, 422),
        ("PUT", f"/v1/prompts/{pid}/labels/{'x' * 51}", {"version": 1}, 422),
        ("DELETE", f"/v1/prompts/{pid}/labels/nope", None, 404),
        ("DELETE", f"/v1/prompts/{pid}/labels/a%00b", None, 422),
        ("POST", f"/v1/prompts/{pid}/render", b"", 400),
        ("POST", f"/v1/prompts/{pid}/render", {"variables": []}, 400),
        ("POST", f"/v1/prompts/{pid}/render", {"variables": {}, "extra": 1}, 400),
        ("POST", f"/v1/prompts/{pid}/render", {"variables": {}, "version": 0}, 400),
        ("POST", f"/v1/prompts/{pid}/render", {"variables": {}, "version": 2**40}, 400),
        ("POST", f"/v1/prompts/{pid}/render", {"variables": {}, "label": "BAD"}, 400),
        ("POST", f"/v1/prompts/{pid}/render", {"variables": {}, "version": 99}, 404),
        ("POST", f"/v1/prompts/{missing}/render", {"variables": {}}, 404),
    ]
    for method, path, body, status in cases:
        kwargs: dict[str, Any] = {}
        if isinstance(body, bytes):
            kwargs = {"content": body, "headers": {"content-type": "application/json"}}
        elif body is not None:
            kwargs = {"json": body}
        resp = await api.request(method, path, **kwargs)
        assert resp.status_code == status, (method, path, body, resp.status_code, resp.text)

    full = {"question": "q", "context": "c"}
    for variables, field in [
        ({"context": "c"}, "variables.question"),
        ({**full, "extra": "e"}, "variables.extra"),
        ({**full, "question": None}, "variables.question"),
        ({**full, "question": ["a"]}, "variables.question"),
        ({**full, "question": {"k": "v"}}, "variables.question"),
    ]:
        resp = await api.post(f"/v1/prompts/{pid}/render", json={"variables": variables})
        assert resp.status_code == 422, resp.text
        assert [e["field"] for e in resp.json()["errors"]] == [field]
    both = await api.post(
        f"/v1/prompts/{pid}/render", json={"variables": full, "label": "production", "version": 1}
    )
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "version"
    scalars = await api.post(
        f"/v1/prompts/{pid}/render",
        json={"variables": {"question": 42, "context": True}},
    )
    assert scalars.status_code == 200 and "42" in scalars.json()["text"]

    # Nothing above changed the prompt.
    got = (await api.get(f"/v1/prompts/{pid}")).json()
    assert got["version"] == 1 and got["latest_version"] == 1
