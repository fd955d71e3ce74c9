"""Console pages against the API calls behind them, on a benchmark database of their own.

Stored first: RUNS runs (default 10,000; inputs and outputs are CISI abstracts and
queries, four models, 5% errors, spread over 60 days, recorded through RunService in
batches and indexed by a running indexer) and DOCS CISI abstracts (default 300, through
`POST /v1/documents/batch`). Then one `myaiserv serve` (with its indexer) answers, on one
client, for each of QUERIES words (taken from the CISI queries, the same list for both
sides), the console page and then the API call that page makes, in alternation: the runs
page (`GET /console/runs?q=`, logged in through the login form) beside
`POST /v1/runs/search` with the same query, facets and aggregations; the documents page
(`GET /console/documents?q=`) beside `POST /v1/search` with the same query. Each figure is
the server's own time (its `Server-Timing: app;dur=` header, so the client's time is
left out), p50 and p99 over ROUNDS rounds pooled; the spread is the lowest and highest
per-round p50. An untimed pass over every word comes first: the documents page and its
API call send the same search, so they share its cache entry, and whichever went first
would pay the miss; after the pass both are measured warm (the uncached search is
measured by bench-search).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select

from bench import report
from bench.common import ROOT, bench_settings, prepare_database
from myaiserv.console.document_filters import FACETS as DOCUMENT_FACETS
from myaiserv.console.documents import PAGE_SIZE as DOCUMENT_PAGE_SIZE
from myaiserv.console.run_search import PAGE_SIZE as RUNS_PAGE_SIZE
from myaiserv.datasets.trec import load_collection
from myaiserv.db.engine import create_engine, create_sessionmaker
from myaiserv.db.models import OutboxEvent
from myaiserv.evaluation.harness import local_api
from myaiserv.evaluation.runner import documents_payload

DB = "myaiserv_bench_console"
REDIS_DB = 7
PREFIX = "benchconsole"
RUNS = int(os.environ.get("CONSOLE_RUNS", "10000"))
DOCS = int(os.environ.get("CONSOLE_DOCS", "300"))
QUERIES = int(os.environ.get("CONSOLE_QUERIES", "40"))
ROUNDS = int(os.environ.get("CONSOLE_ROUNDS", "3"))
MODELS = ("gpt-4o-mini", "gpt-4o", "llama-3.1-8b", "mistral-small")
CISI = Path(os.environ.get("MYAISERV_CISI", ROOT.parent / "shared" / "data" / "cisi"))
PASSWORD = "bench-console-password"  # noqa: S105 (a benchmark user on its own database)


def runs_api_body(query: str) -> dict[str, Any]:
    """What the runs page asks for (myaiserv/console/runs.py): a page of hits with their
    inputs (for the snippets), and every aggregation (cards and charts)."""
    return {"query": query, "size": RUNS_PAGE_SIZE, "fields": ["input"], "aggregations": True}


def documents_api_body(query: str) -> dict[str, Any]:
    """The documents page's search (no metadata fields are configured here, so no
    metadata facets): one hit per document, its facets, a page of PAGE_SIZE."""
    return {
        "query": query,
        "kinds": ["documents"],
        "facets": list(DOCUMENT_FACETS),
        "collapse": True,
        "size": DOCUMENT_PAGE_SIZE,
    }


def server_ms(response: httpx.Response) -> float:
    response.raise_for_status()
    timing = response.headers["server-timing"]
    match = re.search(r"dur=([\d.]+)", timing)
    if match is None:
        raise RuntimeError(f"no duration in Server-Timing: {timing!r}")
    return float(match.group(1))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def store_runs(
    sessions: Any,
    tenant_id: Any,
    texts: list[str],
    *,
    count: int = RUNS,
    distinct: int | None = None,
    days: int = 60,
) -> None:
    """``count`` runs recorded through RunService (500 per transaction): four models, 5%
    errors, started over the last ``days``, inputs and outputs drawn from ``texts``; with
    ``distinct``, each run's (input, output) is one of that many pairs drawn first (so an
    indexer embeds that many texts, the rest are its cache's hits)."""
    from myaiserv.runs.service import RunService

    rng = random.Random(19)  # noqa: S311 (reproducible data, not secrets)
    pairs = None
    if distinct:
        pick = random.Random(23)  # noqa: S311
        pairs = [(pick.choice(texts), pick.choice(texts)) for _ in range(distinct)]
    now = datetime.now(UTC)
    batch = 500
    for start in range(0, count, batch):
        async with sessions() as session, session.begin():
            service = RunService(session, tenant_id)
            for _ in range(min(batch, count - start)):
                failed = rng.random() < 0.05
                started = now - timedelta(seconds=rng.uniform(0, days * 86400))
                latency = rng.lognormvariate(6.5, 0.5)
                prompt, completion = rng.randint(50, 2000), rng.randint(10, 500)
                model = rng.choice(MODELS)
                if pairs is None:  # (the draws in the order they have always been made)
                    given = rng.choice(texts)
                    answer = None if failed else rng.choice(texts)
                else:
                    given, answer = rng.choice(pairs)
                await service.record(
                    provider="openai",
                    model=model,
                    input=given,
                    output=None if failed else answer,
                    error="upstream timeout" if failed else None,
                    status="error" if failed else "ok",
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    latency_ms=latency,
                    cost_usd=round((prompt * 0.15 + completion * 0.6) / 1e6, 6),
                    started_at=started,
                    finished_at=started + timedelta(milliseconds=latency),
                )


def query_words(collection: Any, n: int) -> list[str]:
    """``n`` words of six letters or more from the collection's queries (a fixed sample)."""
    words = sorted(
        {w.lower() for query in collection.queries for w in re.findall(r"[A-Za-z]{6,}", query.text)}
    )
    return random.Random(7).sample(words, min(n, len(words)))  # noqa: S311


async def wait_indexed(sessions: Any, what: str) -> float:
    started = time.monotonic()
    while True:
        async with sessions() as session:
            pending = await session.scalar(select(func.count(OutboxEvent.id)))
        if not pending:
            return time.monotonic() - started
        print(f"bench: {pending} {what} to index", flush=True)
        await asyncio.sleep(5)


async def login(client: httpx.AsyncClient, email: str) -> None:
    await client.get("/console/login")
    token = client.cookies.get("myaiserv_csrf", path="/console") or ""
    done = await client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "_csrf_token": token, "next": ""},
    )
    if done.status_code != 303:
        raise RuntimeError(f"login refused: {done.status_code} {done.text[:200]}")


async def measure(
    page: httpx.AsyncClient, api: httpx.AsyncClient, words: list[str]
) -> dict[str, list[list[float]]]:
    """Per round, the server times of each side, page and API alternating."""
    sides: dict[str, list[list[float]]] = {
        k: [] for k in ("runs_page", "runs_api", "docs_page", "docs_api")
    }
    for _ in range(ROUNDS):
        times: dict[str, list[float]] = {k: [] for k in sides}
        for word in words:
            times["runs_page"].append(
                server_ms(await page.get("/console/runs", params={"q": word}))
            )
            times["runs_api"].append(
                server_ms(await api.post("/v1/runs/search", json=runs_api_body(word)))
            )
            times["docs_page"].append(
                server_ms(await page.get("/console/documents", params={"q": word}))
            )
            times["docs_api"].append(
                server_ms(await api.post("/v1/search", json=documents_api_body(word)))
            )
        for key, values in times.items():
            sides[key].append(values)
    return sides


def summarise(rounds: list[list[float]]) -> dict[str, float]:
    pooled = [v for values in rounds for v in values]
    p50s = [statistics.median(values) for values in rounds]
    return {
        "p50_ms": round(statistics.median(pooled), 2),
        "p99_ms": round(percentile(pooled, 0.99), 2),
        "p50_min_ms": round(min(p50s), 2),
        "p50_max_ms": round(max(p50s), 2),
        "n": len(pooled),
    }


async def main() -> None:
    settings, env = bench_settings(DB, REDIS_DB, PREFIX)
    env["MYAISERV_CONSOLE__SECRET"] = "bench-console-secret-0123456789abcdef"  # noqa: S105
    await prepare_database(settings, fresh=True)
    collection = load_collection(CISI)
    texts = [doc.text for doc in collection.documents if doc.text.strip()]
    texts += [query.text for query in collection.queries if query.text.strip()]
    words = query_words(collection, QUERIES)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        from myaiserv.auth.service import TenantService
        from myaiserv.users.service import UserService

        async with sessions() as session, session.begin():
            issued = await TenantService(session).create_tenant(
                "console", scopes=["read", "write", "admin"]
            )
        email = "bench@console.test"
        async with sessions() as session, session.begin():
            link = await UserService(session, settings.console).invite(
                issued.tenant_id, email, "viewer"
            )
        token = parse_qs(urlsplit(link.url).query)["token"][0]
        async with sessions() as session, session.begin():
            await UserService(session, settings.console).set_password(token, PASSWORD)
        started = time.monotonic()
        await store_runs(sessions, issued.tenant_id, texts)
        stored_s = time.monotonic() - started
        headers = {"Authorization": f"Bearer {issued.plaintext}"}
        async with (
            local_api(env) as (url, _),
            httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as api,
        ):
            docs = documents_payload(collection)[:DOCS]
            for i in range(0, len(docs), 100):
                stored = await api.post(
                    "/v1/documents/batch", json={"documents": docs[i : i + 100]}
                )
                stored.raise_for_status()
            indexed_s = await wait_indexed(sessions, "runs and documents")
            async with httpx.AsyncClient(base_url=url, timeout=120) as page:
                await login(page, email)
                for word in words:  # warm both sides alike, every word (see the docstring)
                    await page.get("/console/runs", params={"q": word})
                    await api.post("/v1/runs/search", json=runs_api_body(word))
                    await page.get("/console/documents", params={"q": word})
                    await api.post("/v1/search", json=documents_api_body(word))
                sides = await measure(page, api, words)
    finally:
        await engine.dispose()
    figures: dict[str, Any] = {"runs_stored": RUNS, "documents_stored": len(docs)}
    for key, prefix in (
        ("runs_page", "runs"),
        ("runs_api", "runs_api"),
        ("docs_page", "documents"),
        ("docs_api", "documents_api"),
    ):
        for name, value in summarise(sides[key]).items():
            figures[f"{prefix}_{name}"] = value
    figures["runs_overhead_p50_ms"] = round(figures["runs_p50_ms"] - figures["runs_api_p50_ms"], 2)
    figures["documents_overhead_p50_ms"] = round(
        figures["documents_p50_ms"] - figures["documents_api_p50_ms"], 2
    )
    method = {
        "how": __doc__.strip() if __doc__ else "",
        "queries": len(words),
        "rounds": ROUNDS,
        "store_runs_s": round(stored_s, 1),
        "index_wait_s": round(indexed_s, 1),
    }
    report.save("console", figures, method)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
