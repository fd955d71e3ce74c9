"""Metadata Elasticsearch would refuse for good is refused at the API, naming the place,
instead of a write acknowledged with a 201 and then dead-lettered: objects nested deeper
than the flattened field's depth limit, and a value whose term (key path and value, in
UTF-8) is longer than Lucene's longest term. Metadata at exactly the limits is stored and
indexed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from myaiserv.db.models import DeadLetter
from myaiserv.kit.validation import FLATTENED_DEPTH_LIMIT, MAX_TERM_BYTES
from myaiserv.resources import Resources
from tests.support import TenantKey, drain

pytestmark = pytest.mark.integration

KEY = "é" * 8000  # 16,000 bytes: the longest key the API allows, in two-byte characters


def nested(levels: int, leaf: Any = "x") -> dict[str, Any]:
    """``levels`` objects, one inside the other."""
    value: Any = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def term_of(size: int) -> dict[str, Any]:
    """One key and value whose flattened term is ``size`` bytes."""
    value = "€" * ((size - 16_001) // 3) + "v" * ((size - 16_001) % 3)
    return {KEY: value}


DEEPEST = nested(FLATTENED_DEPTH_LIMIT)
LONGEST = term_of(MAX_TERM_BYTES)
TOO_DEEP = nested(FLATTENED_DEPTH_LIMIT + 1)
TOO_LONG = term_of(MAX_TERM_BYTES + 1)
DEEP_FIELD = "metadata" + ".k" * FLATTENED_DEPTH_LIMIT
LONG_FIELD = f"metadata.{KEY}"


async def dead_letters(resources: Resources, tenant: TenantKey) -> int:
    async with resources.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.tenant_id == tenant.id)
        )
    return count or 0


def refused(resp: Any, field: str) -> None:
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(("metadata", "field"), [(TOO_DEEP, DEEP_FIELD), (TOO_LONG, LONG_FIELD)])
async def test_every_way_in_refuses_metadata_the_index_would_refuse(
    api: AsyncTestClient, metadata: dict[str, Any], field: str
) -> None:
    doc = {"text": "metadata limits", "metadata": metadata}
    refused(await api.post("/v1/documents", json=doc), field)
    batch = {"documents": [{"text": "fine"}, doc]}
    refused(await api.post("/v1/documents/batch", json=batch), f"documents[1].{field}")
    stored = (await api.post("/v1/documents", json={"text": "patched later"})).json()
    patched = await api.patch(f"/v1/documents/{stored['id']}", json={"metadata": metadata})
    refused(patched, field)
    refused(await api.post("/v1/conversations", json={"metadata": metadata}), field)
    run = {"provider": "p", "model": "m", "status": "ok", "input": "q", "metadata": metadata}
    refused(await api.post("/v1/runs", json=run), field)
    form = {"metadata": json.dumps(metadata)}
    files = {"file": ("note.txt", b"uploaded text", "text/plain")}
    refused(await api.post("/v1/documents/upload", data=form, files=files), field)
    # Nothing of it was stored: the batch is all or nothing.
    listed = (await api.get("/v1/documents")).json()["items"]
    assert [d["id"] for d in listed] == [stored["id"]]


async def test_a_form_field_nested_past_parsing_is_a_422_not_a_500(api: AsyncTestClient) -> None:
    deep = "[" * 5000 + "]" * 5000
    form = {"metadata": deep}
    files = {"file": ("note.txt", b"uploaded text", "text/plain")}
    resp = await api.post("/v1/documents/upload", data=form, files=files)
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == "metadata"


async def test_metadata_at_the_limits_is_stored_and_indexed(
    api: AsyncTestClient, resources: Resources, tenant: TenantKey
) -> None:
    resp = await api.post(
        "/v1/documents/batch",
        json={
            "documents": [
                {"text": "deepest metadata", "metadata": DEEPEST},
                {"text": "longest metadata term", "metadata": LONGEST},
            ]
        },
    )
    assert resp.status_code == 201, resp.text
    ids = {d["id"] for d in resp.json()["items"]}
    await drain(resources)
    assert await dead_letters(resources, tenant) == 0
    found = await api.post(
        "/v1/search", json={"kinds": ["documents"], "filters": {"type": ["chunk"]}, "size": 10}
    )
    assert {hit["fields"]["document_id"] for hit in found.json()["hits"]} == ids
