"""Traces as a trace store receives them: real API and indexer processes with tracing on
(Zipkin exporter), read back from a real Zipkin server (``tests.support.zipkin_url``).

Each test starts its own processes with its own service name; the processes are separate
because OpenTelemetry's provider is one per process, as it is in production."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from myaiserv.config import Settings
from myaiserv.evaluation.harness import free_port
from myaiserv.resources import Resources
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support import (
    ROOT,
    TenantKey,
    console_login,
    drain,
    eventually,
    make_user,
    process_env,
    served,
    tracing_env,
    zipkin_trace,
    zipkin_url,
)


def traceparent() -> tuple[str, str, str]:
    """(header, trace id, span id) of a client's own sampled span."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def service() -> str:
    return f"myaiserv-test-{uuid.uuid4().hex[:8]}"


def by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s.get("name", "").lower() == name.lower()]


def holding(*names: str) -> Callable[[list[dict[str, Any]]], bool]:
    """A trace is complete once it holds a span of each name: a parent span ends after
    its children, so they may reach Zipkin in separate export batches."""
    return lambda spans: all(by_name(spans, name) for name in names)


def ancestors(spans: list[dict[str, Any]], span: dict[str, Any]) -> list[str]:
    """Ids of ``span``'s parent, its parent's parent, ... as far as the trace holds them."""
    index = {s["id"]: s for s in spans}
    out: list[str] = []
    parent = span.get("parentId")
    while parent is not None:
        out.append(parent)
        parent = index.get(parent, {}).get("parentId")
    return out


def llm_env(upstream: str) -> dict[str, str]:
    providers = [
        {"name": "local", "kind": "extractive", "models": ["extractive"]},
        {"name": "fake", "base_url": upstream, "models": ["echo"], "max_retries": 0},
    ]
    aliases = {
        "myaiserv-rag": {"targets": ["local/extractive"]},
        "kb-echo": {"targets": ["fake/echo"]},
    }
    import json

    return {
        "MYAISERV_LLM__PROVIDERS": json.dumps(providers),
        "MYAISERV_LLM__ALIASES": json.dumps(aliases),
    }


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


async def test_chat_completion_is_one_trace_continuing_the_clients(
    settings: Settings,
    resources: Resources,
    tenant: TenantKey,
    fake_llm: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    name = service()
    header, trace_id, client_span = traceparent()
    trace_page = f"{zipkin_url()}/zipkin/traces/{{trace_id}}"
    env = {
        **tracing_env(name, MYAISERV_TRACING__UI_URL=trace_page),
        **llm_env(fake_llm.url),
    }
    question = f"what do tides depend on {uuid.uuid4().hex}"  # a query embedding not cached
    with served(settings, tmp_path, **env) as (url, _):
        async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=60) as api:
            resp = await api.post(
                "/v1/chat/completions",
                json={"model": "kb-echo", "messages": [{"role": "user", "content": question}]},
                headers={"traceparent": header},
            )
            assert resp.status_code == 200, resp.text
            run_id = resp.json()["run_id"]
        # The console finds the run by its trace id, and its page links to the trace in
        # the trace store's UI.
        await drain(resources)
        user = await make_user(resources, tenant, "viewer")
        async with httpx.AsyncClient(base_url=url, timeout=60) as browser:
            assert (await console_login(browser, user)).status_code == 303
            listed = await browser.get("/console/runs", params={"trace_id": trace_id})
            page = await browser.get(f"/console/runs/{run_id}")
        assert listed.status_code == 200, listed.text
        assert f'href="/console/runs/{run_id}"' in listed.text
        assert page.status_code == 200, page.text
        link = trace_page.format(trace_id=trace_id)
        assert f'href="{link}"' in page.text

        spans = await zipkin_trace(
            trace_id, holding("POST /v1/chat/completions", "chat echo", "embedding batch")
        )
    assert spans, "no trace in Zipkin"
    assert {s["traceId"] for s in spans} == {trace_id}  # the client's trace id
    (server,) = by_name(spans, "POST /v1/chat/completions")
    assert server["parentId"] == client_span and server["kind"] == "SERVER"
    assert server["tags"]["http.status_code"] == "200"
    assert server["localEndpoint"]["serviceName"] == name

    es = [s for s in spans if s.get("tags", {}).get("db.system.name") == "elasticsearch"]
    assert es and all(server["id"] in ancestors(spans, s) for s in es)
    (embed,) = by_name(spans, "embed")
    batches = by_name(spans, "embedding batch")
    assert all(b["parentId"] == embed["id"] for b in batches)
    assert server["id"] in ancestors(spans, embed)
    tags = batches[0]["tags"]
    assert tags["myaiserv.embedding.texts"] == "1" and int(tags["myaiserv.embedding.tokens"]) > 5
    assert tags["myaiserv.embedding.backend"]

    (llm,) = by_name(spans, "chat echo")
    assert llm["kind"] == "CLIENT" and server["id"] in ancestors(spans, llm)
    assert llm["tags"]["gen_ai.request.model"] == "echo"
    assert llm["tags"]["myaiserv.llm.provider"] == "fake"
    assert int(llm["tags"]["gen_ai.usage.output_tokens"]) > 0
    assert "myaiserv.llm.time_to_first_token_ms" in llm["tags"]
    # The upstream was sent our trace context, naming the provider span as its parent.
    sent = fake_llm.request_headers[-1]["traceparent"]
    assert sent.split("-")[1:3] == [trace_id, llm["id"]]

    # The run keeps its trace id, and runs search filters by it.
    run = (await _get(resources, tenant, f"/v1/runs/{run_id}")).json()
    assert run["trace_id"] == trace_id
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(link)).status_code == 200  # Zipkin's page of the trace
    found = await _search_runs(resources, tenant, {"trace_id": trace_id})
    assert [h["id"] for h in found["hits"]] == [run_id]
    other = await _search_runs(resources, tenant, {"trace_id": secrets.token_hex(16)})
    assert other["hits"] == []


async def _get(resources: Resources, tenant: TenantKey, path: str) -> httpx.Response:
    from litestar.testing import AsyncTestClient

    from myaiserv.app import create_app

    app = create_app(resources.settings, embedder=resources.embedder.embedder)
    async with AsyncTestClient(app=app) as client:
        return await client.get(path, headers=tenant.headers)


async def _search_runs(
    resources: Resources, tenant: TenantKey, filters: dict[str, Any]
) -> dict[str, Any]:
    from litestar.testing import AsyncTestClient

    from myaiserv.app import create_app

    app = create_app(resources.settings, embedder=resources.embedder.embedder)
    async with AsyncTestClient(app=app) as client:
        resp = await client.post(
            "/v1/runs/search", json={"filters": filters}, headers=tenant.headers
        )
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def indexer(settings: Settings, folder: Path, **env: str) -> subprocess.Popen[bytes]:
    """``myaiserv indexer run`` as a real process on these settings."""
    variables = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(ROOT),
        **process_env(settings),
        **env,
    }
    with (folder / "indexer.log").open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "myaiserv", "indexer", "run", "--metrics-port", "0"],
            env=variables,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_document_write_continues_in_the_indexer(
    settings: Settings, tenant: TenantKey, tmp_path: Path
) -> None:
    name = service()
    header, trace_id, _ = traceparent()
    proc = indexer(settings, tmp_path, **tracing_env(name))
    try:
        with served(settings, tmp_path, **tracing_env(name)) as (url, _):
            async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=60) as api:
                resp = await api.post(
                    "/v1/documents",
                    json={"text": "Tides follow the moon. " * 20, "title": "tides"},
                    headers={"traceparent": header},
                )
                assert resp.status_code == 201, resp.text
                doc = resp.json()["id"]

                async def indexed() -> bool:
                    got = await api.get(f"/v1/documents/{doc}")
                    return bool(got.json()["index_status"] == "indexed")

                assert await eventually(indexed, within=120), (tmp_path / "indexer.log").read_text()

            spans = await zipkin_trace(
                trace_id, holding("POST /v1/documents", "indexer batch", "embedding batch")
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    (server,) = by_name(spans, "POST /v1/documents")
    assert server["localEndpoint"]["serviceName"] == name
    (batch,) = by_name(spans, "indexer batch")
    assert batch["localEndpoint"]["serviceName"] == f"{name}-indexer"
    assert batch["traceId"] == trace_id
    assert batch["parentId"] == server["id"]  # the outbox row was written in the request
    work = [s for s in spans if s["localEndpoint"]["serviceName"] == f"{name}-indexer"]
    assert by_name(work, "embedding batch") and any(
        s.get("tags", {}).get("db.operation.name") == "bulk" for s in work
    )
    assert all(batch["id"] in ancestors(spans, s) for s in work if s is not batch)


async def test_a_failing_provider_marks_its_span_as_an_error(
    settings: Settings, tenant: TenantKey, tmp_path: Path
) -> None:
    name = service()
    header, trace_id, _ = traceparent()
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with served(settings, tmp_path, **tracing_env(name), **llm_env(closed)) as (url, _):
        async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=60) as api:
            resp = await api.post(
                "/v1/chat/completions",
                json={"model": "kb-echo", "messages": [{"role": "user", "content": "tides?"}]},
                headers={"traceparent": header},
            )
            assert resp.status_code >= 500, resp.text
        spans = await zipkin_trace(trace_id, holding("POST /v1/chat/completions", "chat echo"))
    (llm,) = by_name(spans, "chat echo")
    assert llm["tags"]["otel.status_code"] == "ERROR"
    assert "error" in llm["tags"]
    (server,) = by_name(spans, "POST /v1/chat/completions")
    assert server["tags"]["otel.status_code"] == "ERROR"  # a 5xx answer


async def test_sampling_ratio_zero_records_nothing(
    settings: Settings, tenant: TenantKey, tmp_path: Path
) -> None:
    name = service()
    env = tracing_env(name, MYAISERV_TRACING__SAMPLE_RATIO="0")
    with served(settings, tmp_path, **env) as (url, _):
        async with httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=60) as api:
            resp = await api.post("/v1/documents", json={"text": "Sampled out."})
            assert resp.status_code == 201, resp.text
            resp = await api.post("/v1/search", json={"query": "sampled"})
            assert resp.status_code == 200, resp.text
    # The server has stopped: its exporter flushed everything it held on the way out.
    async with httpx.AsyncClient(timeout=10) as client:
        services = (await client.get(f"{zipkin_url()}/api/v2/services")).json()
        traces = await client.get(f"{zipkin_url()}/api/v2/traces", params={"serviceName": name})
    assert name not in services
    assert traces.json() == []
