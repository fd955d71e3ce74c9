"""Tenant isolation, swept across the API: two tenants store identical data (so every
search matches both tenants' records equally well), then each one reads, lists, searches,
facets, chats and tries to change or delete the other's records by id.

A *leak* is any answer to one tenant that contains an id of the other tenant's records,
or any change it manages to make to them. ``sweep`` counts the checks made and the leaks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Records:
    ids: set[str] = field(default_factory=set)  # every id of this tenant's records
    document: str = ""
    conversation: str = ""
    message: str = ""
    prompt: str = ""
    run: str = ""
    key: str = ""


@dataclass
class SweepResult:
    checks: int = 0
    leaks: list[str] = field(default_factory=list)


def corpus(tag: str) -> list[dict[str, Any]]:
    return [
        {
            "title": f"Isolation {tag} {n}",
            "text": f"The {tag} isolation corpus, entry {n}: tides, moons and orbital resonance.",
            "tags": ["isolation", tag],
            "metadata": {"n": n},
        }
        for n in range(3)
    ]


async def populate(http: httpx.AsyncClient, tag: str) -> Records:
    """The same records for any tenant (``tag`` is shared: identical content)."""
    rec = Records()

    async def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await http.post(url, json=body)
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:200]}")
        return resp.json()

    batch = await post("/v1/documents/batch", {"documents": corpus(tag)})
    rec.ids |= {d["id"] for d in batch["items"]}
    rec.document = batch["items"][0]["id"]
    conv = await post("/v1/conversations", {"title": f"Isolation {tag}"})
    rec.conversation = conv["id"]
    message = await post(
        f"/v1/conversations/{rec.conversation}/messages",
        {"role": "user", "content": f"tides and moons {tag}"},
    )
    rec.message = message["id"]
    prompt = await post("/v1/prompts", {"name": f"iso-{tag}", "template": "About {question}"})
    rec.prompt = prompt["id"]
    run = await post(
        "/v1/runs",
        {"provider": "p", "model": "m", "input": f"tides {tag}", "status": "ok"},
    )
    rec.run = run["id"]
    key = await post("/v1/admin/keys", {"name": f"iso-{tag}", "scopes": ["read"]})
    rec.key = key["id"]
    rec.ids |= {rec.conversation, rec.message, rec.prompt, rec.run, rec.key}
    return rec


def _leaked(text: str, other: Records) -> list[str]:
    return [i for i in other.ids if i in text]


async def sweep(me: httpx.AsyncClient, mine: Records, other: Records, *, tag: str) -> SweepResult:
    """``me`` against ``other``'s records; ``mine`` are ``me``'s own (they must be found,
    so a sweep that sees nothing at all cannot pass)."""
    result = SweepResult()

    async def check(name: str, resp: httpx.Response, *, must_find: bool = False) -> None:
        result.checks += 1
        leaked = _leaked(resp.text, other)
        if leaked:
            result.leaks.append(f"{name}: {len(leaked)} of the other tenant's ids")
        if must_find and not _leaked(resp.text, mine):
            result.leaks.append(f"{name}: found none of its own records (the check is blind)")

    async def refused(name: str, resp: httpx.Response) -> None:
        result.checks += 1
        if resp.status_code not in (404, 403):
            result.leaks.append(f"{name}: {resp.status_code} on the other tenant's record")

    # Reads and writes of the other tenant's records by id: all 404.
    by_id = [
        ("GET", f"/v1/documents/{other.document}", None),
        ("PATCH", f"/v1/documents/{other.document}", {"title": "taken"}),
        ("GET", f"/v1/conversations/{other.conversation}", None),
        ("GET", f"/v1/conversations/{other.conversation}/messages", None),
        (
            "POST",
            f"/v1/conversations/{other.conversation}/messages",
            {"role": "user", "content": "x"},
        ),
        ("PATCH", f"/v1/conversations/{other.conversation}", {"title": "taken"}),
        ("DELETE", f"/v1/conversations/{other.conversation}/messages/{other.message}", None),
        ("GET", f"/v1/prompts/{other.prompt}", None),
        ("GET", f"/v1/prompts/{other.prompt}/versions", None),
        ("GET", f"/v1/prompts/{other.prompt}/versions/1", None),
        ("POST", f"/v1/prompts/{other.prompt}/versions", {"template": "taken"}),
        ("PUT", f"/v1/prompts/{other.prompt}/labels/production", {"version": 1}),
        ("POST", f"/v1/prompts/{other.prompt}/render", {"variables": {"question": "q"}}),
        ("PATCH", f"/v1/prompts/{other.prompt}", {"description": "taken"}),
        ("GET", f"/v1/runs/{other.run}", None),
        ("PATCH", f"/v1/runs/{other.run}", {"output": "taken"}),
        ("DELETE", f"/v1/admin/keys/{other.key}", None),
        ("DELETE", f"/v1/documents/{other.document}", None),
        ("DELETE", f"/v1/prompts/{other.prompt}", None),
        ("DELETE", f"/v1/runs/{other.run}", None),
        ("DELETE", f"/v1/conversations/{other.conversation}", None),
    ]
    for method, url, body in by_id:
        await refused(f"{method} {url.split('/')[2]}", await me.request(method, url, json=body))

    # Lists, searches, facets, aggregations, chat: only one's own records.
    await check("list documents", await me.get("/v1/documents"), must_find=True)
    await check("list conversations", await me.get("/v1/conversations"), must_find=True)
    await check("list prompts", await me.get("/v1/prompts"), must_find=True)
    await check("list runs", await me.get("/v1/runs"), must_find=True)
    await check("list keys", await me.get("/v1/admin/keys"), must_find=True)
    await check("audit", await me.get("/v1/admin/audit", params={"limit": 500}))
    await check("prompt by name", await me.get(f"/v1/prompts/by-name/iso-{tag}"), must_find=True)
    for mode in ("bm25", "vector", "hybrid"):
        body = {"query": f"{tag} isolation tides moons", "mode": mode, "size": 50}
        await check(f"search {mode}", await me.post("/v1/search", json=body), must_find=True)
        # The same again: now from the result cache.
        await check(f"search {mode} cached", await me.post("/v1/search", json=body))
    facets = {
        "query": "tides",
        "facets": ["tags", "kind", "type"],
        "histogram": {"interval": "day"},
        "size": 50,
    }
    await check("search facets", await me.post("/v1/search", json=facets), must_find=True)
    filtered = {"query": "tides", "filters": {"document_id": [other.document]}, "size": 50}
    await check("search filtered by their id", await me.post("/v1/search", json=filtered))
    runs = {"query": f"tides {tag}", "aggregations": True, "size": 50}
    await check("runs search", await me.post("/v1/runs/search", json=runs), must_find=True)
    chat = {
        "model": "myaiserv-rag",
        "messages": [{"role": "user", "content": f"What does the {tag} corpus say about tides?"}],
    }
    await check("chat citations", await me.post("/v1/chat/completions", json=chat))
    rag = {"question": f"What does the {tag} corpus say about tides?"}
    await check("rag passages", await me.post("/v1/rag/answer", json=rag), must_find=True)
    await check("usage", await me.get("/v1/usage"))
    return result


async def two_tenant_sweep(
    a: httpx.AsyncClient, b: httpx.AsyncClient, *, settle: Any = None
) -> SweepResult:
    """Populate both tenants identically, let ``settle()`` index (await it), sweep both
    ways, and check the other tenant's records are untouched."""
    tag = "iso" + uuid.uuid4().hex[:8]
    rec_a = await populate(a, tag)
    rec_b = await populate(b, tag)
    if settle is not None:
        await settle()
    first = await sweep(a, rec_a, rec_b, tag=tag)
    second = await sweep(b, rec_b, rec_a, tag=tag)
    total = SweepResult(first.checks + second.checks, first.leaks + second.leaks)
    # Nothing the other tenant tried changed anything.
    for client, rec in ((a, rec_a), (b, rec_b)):
        for url in (
            f"/v1/documents/{rec.document}",
            f"/v1/prompts/{rec.prompt}",
            f"/v1/runs/{rec.run}",
            f"/v1/conversations/{rec.conversation}",
        ):
            total.checks += 1
            resp = await client.get(url)
            if resp.status_code != 200 or "taken" in resp.text:
                total.leaks.append(f"{url}: changed by the other tenant ({resp.status_code})")
        total.checks += 1
        keys = (await client.get("/v1/admin/keys")).json()["items"]
        if any(k["id"] == rec.key and k["revoked_at"] for k in keys):
            total.leaks.append("a key was revoked by the other tenant")
    return total
