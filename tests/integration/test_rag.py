# ruff: noqa: E501  (request bodies read best one per line)
"""RAG behind the OpenAI-compatible API, against the real stack: the official `openai`
client (streamed and not), citations, models, embeddings, conversation memory, prompt
versions, recorded runs, the answer cache, provider failures through a local server that
speaks the OpenAI wire protocol, and bad input in OpenAI's error format."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import openai
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from myaiserv.app import create_app
from myaiserv.config import LLMSettings, ModelAlias, ProviderSettings, Settings
from myaiserv.db.models import Document, Run
from myaiserv.resources import Resources
from tests.fakes.openai_server import MODELS, FakeOpenAIServer
from tests.support import TenantKey, drain, make_tenant

pytestmark = pytest.mark.integration

DOCS = [
    {
        "title": "Photosynthesis",
        "text": "Photosynthesis converts sunlight into chemical energy in plants. "
        "Chlorophyll in the leaves absorbs red and blue light. "
        "Oxygen is released as a by-product of splitting water.",
        "tags": ["biology"],
    },
    {
        "title": "Tides",
        "text": "Tides are caused by the gravitational pull of the moon and the sun. "
        "Spring tides happen when the sun and moon align.",
        "tags": ["physics"],
    },
]


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(flaky_failures=1, slow_s=5) as server:
        yield server


def llm_settings(server: FakeOpenAIServer, **overrides: Any) -> LLMSettings:
    return LLMSettings(
        providers=[
            ProviderSettings(name="local", kind="extractive", models=["extractive"]),
            ProviderSettings(
                name="fake",
                base_url=server.url,
                api_key="sk-test",
                models=list(MODELS),
                price_input_per_1k=0.5,
                price_output_per_1k=1.5,
                timeout_s=1.0,
                max_retries=0,
            ),
        ],
        aliases={
            "myaiserv-rag": ModelAlias(targets=["local/extractive"]),
            "kb-echo": ModelAlias(targets=["fake/echo"]),
            "kb-failover": ModelAlias(targets=["fake/server-error", "fake/echo"]),
            "kb-rate-limited": ModelAlias(targets=["fake/rate-limited"]),
            "kb-slow": ModelAlias(targets=["fake/slow"]),
            "kb-broken": ModelAlias(targets=["fake/broken-stream"]),
        },
        **overrides,
    )


@pytest.fixture
async def rag(
    settings: Settings, embedder, resources: Resources, tenant: TenantKey, fake_llm
) -> AsyncIterator[AsyncTestClient]:
    configured = settings.model_copy(update={"llm": llm_settings(fake_llm)})
    async with AsyncTestClient(app=create_app(configured, embedder=embedder)) as client:
        client.headers.update(tenant.headers)
        yield client


@pytest.fixture
async def kb(rag: AsyncTestClient, resources: Resources) -> dict[str, str]:
    resp = await rag.post("/v1/documents/batch", json={"documents": DOCS})
    assert resp.status_code == 201, resp.text
    await drain(resources)
    return {d["title"]: d["id"] for d in resp.json()["items"]}


def sdk(client: AsyncTestClient, key: str) -> openai.AsyncOpenAI:
    """The official client, speaking HTTP to the app in process."""
    return openai.AsyncOpenAI(
        base_url=str(client.base_url).rstrip("/") + "/v1",
        api_key=key,
        http_client=client,
        max_retries=0,
    )


async def runs_of(resources: Resources, tenant: TenantKey) -> list[Run]:
    async with resources.sessionmaker() as session:
        rows = await session.scalars(
            select(Run).where(Run.tenant_id == tenant.id).order_by(Run.created_at)
        )
        return list(rows)


async def test_openai_client_gets_cited_answers_streamed_and_not(
    rag: AsyncTestClient, tenant: TenantKey, resources: Resources, kb
):
    client = sdk(rag, tenant.key)
    question = [{"role": "user", "content": "What does chlorophyll absorb?"}]
    full = await client.chat.completions.create(model="myaiserv-rag", messages=question)
    text = full.choices[0].message.content
    assert "Chlorophyll" in text and "[1]" in text
    assert full.usage.prompt_tokens > 0 and full.usage.completion_tokens > 0
    citations = full.model_extra["citations"]
    assert citations and citations[0]["document_id"] == kb["Photosynthesis"]
    # The cited span is where the passage sits in its document.
    span = citations[0]
    assert DOCS[0]["text"][span["char_start"] : span["char_end"]] == span["text"]

    stream = await client.chat.completions.create(
        model="myaiserv-rag", messages=question, stream=True
    )
    pieces, streamed_citations, usage = [], None, None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if (chunk.model_extra or {}).get("citations") is not None:
            streamed_citations = chunk.model_extra["citations"]
        usage = chunk.usage or usage
    assert "".join(pieces) == text
    assert streamed_citations == citations
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens

    # Every cited chunk exists and is this tenant's; each call is a recorded run.
    async with resources.sessionmaker() as session:
        ids = {c["document_id"] for c in citations}
        owners = set(await session.scalars(select(Document.tenant_id).where(Document.id.in_(ids))))
    assert owners == {tenant.id}
    runs = await runs_of(resources, tenant)
    assert len(runs) == 2
    assert {r.status for r in runs} == {"ok"}
    assert runs[0].cited_chunk_ids == [c["chunk_id"] for c in citations]
    assert runs[0].provider == "local" and runs[0].model == "extractive"
    assert runs[0].retrieved_chunk_ids and runs[0].time_to_first_token_ms is not None


async def test_models_and_embeddings(rag: AsyncTestClient, tenant: TenantKey, embedder):
    client = sdk(rag, tenant.key)
    models = {m.id for m in (await client.models.list()).data}
    assert {"myaiserv-rag", "kb-echo", "fake/echo", "local/extractive", embedder.model_id} <= models

    floats = await client.embeddings.create(model=embedder.model_id, input=["tide", "moon"])
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 384
    expected = (await embedder.encode(["tide"]))[0]
    assert np.allclose(floats.data[0].embedding, expected, atol=1e-5)
    raw = await rag.post("/v1/embeddings", json={"input": "tide", "encoding_format": "base64"})
    decoded = np.frombuffer(base64.b64decode(raw.json()["data"][0]["embedding"]), "<f4")
    assert np.allclose(decoded, expected, atol=1e-5)
    assert floats.usage.prompt_tokens > 0

    # Every installed model is listed and served; bge is installed by `make install`.
    assert "bge-small-en-v1.5" in models
    bge = await client.embeddings.create(model="bge-small-en-v1.5", input=["tide"])
    assert bge.model == "bge-small-en-v1.5" and len(bge.data[0].embedding) == 384
    assert not np.allclose(bge.data[0].embedding, expected, atol=1e-2)  # another model
    unknown = await rag.post("/v1/embeddings", json={"input": "tide", "model": "e5-huge"})
    assert unknown.status_code == 404, unknown.text


async def test_openai_compatible_provider_with_memory_and_token_budget(
    rag: AsyncTestClient, tenant: TenantKey, resources: Resources, fake_llm, kb
):
    conv = (await rag.post("/v1/conversations", json={"title": "tides"})).json()["id"]
    client = sdk(rag, tenant.key)
    first = await client.chat.completions.create(
        model="kb-echo",
        messages=[{"role": "user", "content": "What causes tides?"}],
        extra_body={"conversation_id": conv},
    )
    assert first.choices[0].message.content == "Echo: What causes tides? [1]"
    await client.chat.completions.create(
        model="kb-echo",
        messages=[{"role": "user", "content": "And spring tides?"}],
        extra_body={"conversation_id": conv},
    )
    sent = fake_llm.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and "gravitational pull" in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == [
        "What causes tides?",
        "Echo: What causes tides? [1]",
        "And spring tides?",
    ]
    messages = (await rag.get(f"/v1/conversations/{conv}/messages")).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    runs = await runs_of(resources, tenant)
    assert runs[-1].cost_usd > 0 and runs[-1].provider == "fake" and runs[-1].model == "echo"
    assert str(runs[-1].conversation_id) == conv


async def test_history_respects_the_token_budget(
    settings: Settings, embedder, resources: Resources, tenant: TenantKey, fake_llm
):
    configured = settings.model_copy(
        update={"llm": llm_settings(fake_llm, history_token_budget=20)}
    )
    async with AsyncTestClient(app=create_app(configured, embedder=embedder)) as rag:
        rag.headers.update(tenant.headers)
        conv = (await rag.post("/v1/conversations", json={"title": "budget"})).json()["id"]
        for i in range(4):
            resp = await rag.post(
                "/v1/chat/completions",
                json={
                    "model": "kb-echo",
                    "messages": [{"role": "user", "content": f"question number {i} about tides"}],
                    "conversation_id": conv,
                },
            )
            assert resp.status_code == 200, resp.text
        sent = fake_llm.requests[-1]["messages"][1:-1]  # between system and the new question
        kept = sum(embedder.count_tokens([m["content"] for m in sent]))
        assert 0 < len(sent) < 6 and kept <= 20
        assert sent[-1]["content"] == "Echo: question number 2 about tides [1]"  # newest kept


async def test_prompt_versions_pin_and_label(
    rag: AsyncTestClient, tenant: TenantKey, resources: Resources, fake_llm, kb
):
    created = await rag.post(
        "/v1/prompts",
        json={"name": "rag-system", "template": "V1 sources: {context}", "labels": ["production"]},
    )
    assert created.status_code == 201, created.text
    prompt_id = created.json()["id"]
    v2 = await rag.post(f"/v1/prompts/{prompt_id}/versions", json={"template": "V2 {question}"})
    assert v2.status_code == 201, v2.text

    async def ask(**extra: Any) -> str:
        calls = len(fake_llm.requests)
        resp = await rag.post(
            "/v1/chat/completions",
            json={"model": "kb-echo", "messages": [{"role": "user", "content": "tides?"}], **extra},
        )
        assert resp.status_code == 200, resp.text
        assert len(fake_llm.requests) == calls + 1  # answered now, not from the cache
        return fake_llm.requests[-1]["messages"][0]["content"]

    assert (await ask()).startswith("V1 sources: [1]")
    assert await ask(prompt={"version": 2}) == "V2 tides?"
    moved = await rag.put(f"/v1/prompts/{prompt_id}/labels/production", json={"version": 2})
    assert moved.status_code in (200, 204), moved.text
    assert await ask() == "V2 tides?"
    runs = await runs_of(resources, tenant)
    assert [r.prompt_version for r in runs[-3:]] == [1, 2, 2]
    assert {r.prompt_name for r in runs[-3:]} == {"rag-system"}
    missing = await rag.post(
        "/v1/chat/completions",
        json={
            "model": "kb-echo",
            "messages": [{"role": "user", "content": "x"}],
            "prompt": {"version": 9},
        },
    )
    assert missing.status_code == 404 and "error" in missing.json()


async def test_answer_cache_hits_and_is_invalidated_by_a_new_document(
    rag: AsyncTestClient, tenant: TenantKey, resources: Resources, kb
):
    body = {
        "model": "myaiserv-rag",
        "messages": [{"role": "user", "content": "What is released by splitting water?"}],
    }
    first = (await rag.post("/v1/chat/completions", json=body)).json()
    again = (await rag.post("/v1/chat/completions", json=body)).json()
    assert first["cached"] is False and again["cached"] is True
    assert again["choices"] == first["choices"] and again["citations"] == first["citations"]
    runs = await runs_of(resources, tenant)
    assert runs[-1].metadata_["cached"] is True and float(runs[-1].cost_usd) == 0

    added = await rag.post(
        "/v1/documents",
        json={"title": "Water", "text": "Splitting water releases oxygen and hydrogen ions."},
    )
    assert added.status_code == 201
    await drain(resources)
    after = (await rag.post("/v1/chat/completions", json=body)).json()
    assert after["cached"] is False

    # Another tenant asking the same never gets this tenant's cached answer or sources.
    other = await make_tenant(resources)
    theirs = await rag.post("/v1/chat/completions", json=body, headers=other.headers)
    assert theirs.status_code == 200 and theirs.json()["cached"] is False
    assert theirs.json()["citations"] == []


async def test_provider_failures_are_clear_and_recorded(
    rag: AsyncTestClient, tenant: TenantKey, resources: Resources, kb
):
    question = [{"role": "user", "content": "tides?"}]
    failover = await rag.post(
        "/v1/chat/completions", json={"model": "kb-failover", "messages": question}
    )
    assert failover.status_code == 200, failover.text
    assert failover.json()["provider_model"] == "fake/echo"
    run = (await runs_of(resources, tenant))[-1]
    assert run.metadata_["attempts"] == ["fake/server-error", "fake/echo"]

    for model, status in (("kb-rate-limited", 429), ("kb-slow", 504)):
        resp = await rag.post("/v1/chat/completions", json={"model": model, "messages": question})
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["message"]
        if status == 429:
            assert "retry-after" in resp.headers
    runs = await runs_of(resources, tenant)
    assert [r.status for r in runs[-2:]] == ["error", "timeout"]

    client = sdk(rag, tenant.key)
    stream = await client.chat.completions.create(model="kb-broken", messages=question, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass
    broken = (await runs_of(resources, tenant))[-1]
    assert broken.status == "error" and broken.output  # the partial text is kept


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "  "}]}, 400, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, 400, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": "word " * 40000}]}, 400, "messages"),
        ({"model": "gpt-nonexistent", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
        ({"messages": "hello"}, 400, None),
        ({"messages": [{"role": "user", "content": "hi"}], "retrieval": {"kinds": ["images"]}}, 400, "retrieval.kinds[0]"),
    ],
)  # fmt: skip
async def test_bad_input_gets_openai_format_errors(rag: AsyncTestClient, body, status, param):
    resp = await rag.post("/v1/chat/completions", json={"model": "myaiserv-rag", **body})
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["message"] and error["type"]
    if param:
        assert error["param"] == param


async def test_rag_answer_gives_sources_and_trace(rag: AsyncTestClient, kb):
    resp = await rag.post("/v1/rag/answer", json={"question": "What causes spring tides?"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["passages"][0]["document_id"] == kb["Tides"]
    assert body["retrieval"]["hits"][0]["ranks"].keys() == {"bm25", "vector"}
    assert body["citations"] and body["run_id"]
    assert uuid.UUID(body["run_id"])


async def test_rate_limit_is_a_429_with_retry_after(
    settings: Settings, embedder, resources: Resources, fake_llm
):
    tenant = await make_tenant(resources)
    configured = settings.model_copy(
        update={"llm": llm_settings(fake_llm, rate_limit_per_minute=2)}
    )
    body = {"model": "kb-echo", "messages": [{"role": "user", "content": "hi there"}]}
    async with AsyncTestClient(app=create_app(configured, embedder=embedder)) as rag:
        rag.headers.update(tenant.headers)
        statuses = [(await rag.post("/v1/chat/completions", json=body)) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    limited = statuses[-1]
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_error"


async def test_runs_of_chat_calls_are_searchable(rag: AsyncTestClient, resources: Resources, kb):
    marker = f"quokka{uuid.uuid4().hex[:6]}"
    resp = await rag.post(
        "/v1/chat/completions",
        json={"model": "kb-echo", "messages": [{"role": "user", "content": f"{marker} tides"}]},
    )
    assert resp.status_code == 200
    await drain(resources)
    found = await rag.post("/v1/runs/search", json={"query": marker})
    assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert [h["id"] for h in hits] == [resp.json()["run_id"]]
    lineage = await rag.post(
        "/v1/runs/search", json={"filters": {"document_id": kb["Tides"]}, "size": 50}
    )
    assert resp.json()["run_id"] in {h["id"] for h in lineage.json()["hits"]}


async def test_streamed_requests_fail_before_the_stream_when_they_can(
    rag: AsyncTestClient, resources: Resources
):
    """Bad options, a missing prompt version or another tenant's conversation are HTTP
    errors, not errors inside a 200 event stream."""
    other = await make_tenant(resources)
    foreign = await rag.post("/v1/conversations", json={"title": "theirs"}, headers=other.headers)
    question = [{"role": "user", "content": "tides?"}]
    for extra, status, param in (
        ({"prompt": {"version": 7}}, 404, None),
        ({"conversation_id": foreign.json()["id"]}, 404, None),
        ({"retrieval": {"filters": {"metadata": {"colour": "red"}}}}, 400, "retrieval.filters.metadata.colour"),
    ):  # fmt: skip
        resp = await rag.post(
            "/v1/chat/completions",
            json={"model": "myaiserv-rag", "messages": question, "stream": True, **extra},
        )
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["message"]
        if param:
            assert resp.json()["error"]["param"] == param
