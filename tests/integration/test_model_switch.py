"""A live switch of the embedding model (`myaiserv index switch-model`) on the real stack,
under continuous searches and writes: new indices built with bge-small-en-v1.5 from
PostgreSQL while the all-MiniLM-L6-v2 ones serve, an indexer writing every change to
both, then every alias swapped at once.

Throughout: no search fails, and every search's query is embedded with the model of the
index it reads (an exact-text vector search finds its own document, close to the top
score; a query of one model against vectors of the other finds noise). After: every
document is in the new indices once, the writes made during the switch are there with
the new model's vectors, the old indices are gone, and nothing is left building.

On a deployment of its own (database, index prefix, Redis namespace): the switch rebuilds
everything stored, and the other tests' indices stay on their model."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from indexers.reindex import switch_model
from indexers.worker import Worker
from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.db.migrate import prepare_database
from myaiserv.db.models import Document, IndexBuild
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import private_deployment
from myaiserv.resources import Resources, open_resources
from myaiserv.search.guard import GUARD_TTL_S
from myaiserv.search.kinds import KINDS
from tests.support import admin_sql, make_tenant

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OLD, NEW = "all-MiniLM-L6-v2", "bge-small-en-v1.5"
SUBJECTS = [
    "glaciers", "volcanoes", "tides", "deserts", "coral reefs", "auroras", "monsoons",
    "earthquakes", "rivers", "caves", "geysers", "tornadoes", "wetlands", "dunes", "fjords",
    "lightning", "icebergs", "canyons", "lagoons", "savannas",
]  # fmt: skip
# An exact-text vector search scores its own chunk near the top of the scale with either
# model (cosine 1 with all-MiniLM-L6-v2; bge's query instruction keeps it near 0.9); a
# query embedded with the other model lands near 0.5 (cosine near 0).
SAME_MODEL_SCORE = 0.8


def text_of(subject: str, n: int) -> str:
    if n == 0:
        return f"Field notes on {subject}: how {subject} form, change and shape the land."
    return f"Visit log {n}: we went out to watch the {subject} again, season {n}."


@pytest.fixture
async def deployment(settings: Settings, embedder: Embedder) -> AsyncIterator[Resources]:
    tag = uuid.uuid4().hex[:6]
    private, _ = private_deployment(settings, OLD, purpose=f"switch{tag}")
    await prepare_database(private, fresh=True)
    try:
        async with open_resources(private, embedder=embedder) as resources:
            await resources.indices.ensure_all()
            try:
                yield resources
            finally:
                pattern = f"{private.es.index_prefix}-*"
                names = list((await resources.es.indices.get(index=pattern)).body)
                if names:
                    await resources.es.indices.delete(index=",".join(names))
    finally:
        await admin_sql(
            settings.database_url,
            f'DROP DATABASE IF EXISTS "{make_url(private.database_url).database}" WITH (FORCE)',
        )


@dataclass
class Searched:
    status: int
    subject: str
    top_title: str | None = None
    score: float | None = None
    problem: str | None = None  # a refusal's detail


@dataclass
class Traffic:
    searches: list[Searched] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # title -> document id
    failed_writes: list[int] = field(default_factory=list)


async def search_continuously(api: AsyncTestClient, traffic: Traffic, stop: asyncio.Event):
    n = 0
    while not stop.is_set():
        subject = SUBJECTS[n % len(SUBJECTS)]
        body = {"query": text_of(subject, 0), "mode": "vector", "kinds": ["documents"], "size": 1}
        resp = await api.post("/v1/search", json=body, headers={"Cache-Control": "no-cache"})
        found = Searched(resp.status_code, subject)
        if resp.status_code != 200:
            found.problem = resp.text[:300]
        elif resp.json()["hits"]:
            hit = resp.json()["hits"][0]
            found.top_title, found.score = hit["fields"]["title"], hit["score"]
        traffic.searches.append(found)
        # Every kind at once too: one query vector for all of them.
        every = await api.post("/v1/search", json={"query": subject, "size": 3})
        traffic.searches.append(
            Searched(every.status_code, subject, problem=None if every.is_success else every.text)
        )
        n += 1
        await asyncio.sleep(0.05)


async def write_continuously(api: AsyncTestClient, traffic: Traffic, stop: asyncio.Event):
    n = 1
    while not stop.is_set():
        subject = SUBJECTS[n % len(SUBJECTS)]
        title = f"{subject} {n}"
        resp = await api.post("/v1/documents", json={"title": title, "text": text_of(subject, n)})
        if resp.status_code == 201:
            traffic.written[title] = resp.json()["id"]
        else:
            traffic.failed_writes.append(resp.status_code)
        n += 1
        await asyncio.sleep(0.2)


async def test_switching_the_model_under_searches_and_writes_loses_nothing(
    deployment: Resources, embedder: Embedder
) -> None:
    resources = deployment
    tenant = await make_tenant(resources, ["read", "write"])
    app = create_app(resources.settings, embedder=embedder)
    async with AsyncTestClient(app=app) as api:
        api.headers.update(tenant.headers)
        first = [{"title": f"{subject} 0", "text": text_of(subject, 0)} for subject in SUBJECTS]
        stored = await api.post("/v1/documents/batch", json={"documents": first})
        assert stored.status_code == 201, stored.text
        await Worker(resources, name="before").drain(idle_exit=True)
        await resources.es.indices.refresh(index=f"{resources.settings.es.index_prefix}-*")
        old_indices = (await resources.indices.serving(KINDS)).index_of

        traffic, stop = Traffic(), asyncio.Event()
        indexer = Worker(resources, name="during")
        running = [
            asyncio.create_task(search_continuously(api, traffic, stop)),
            asyncio.create_task(write_continuously(api, traffic, stop)),
            asyncio.create_task(indexer.drain(idle_exit=False)),
        ]
        try:
            await asyncio.sleep(2)  # traffic on the old model first
            result = await switch_model(resources, NEW, grace_s=GUARD_TTL_S + 2)
            await asyncio.sleep(GUARD_TTL_S)  # traffic on the new model
        finally:
            stop.set()
            indexer.stop()
            await asyncio.gather(*running)
        await Worker(resources, name="after").drain(idle_exit=True)
        await resources.es.indices.refresh(index=f"{resources.settings.es.index_prefix}-*")

        # No search failed, and each read an index of its own query's model.
        refused = [s for s in traffic.searches if s.status != 200]
        assert traffic.searches and refused == []
        exact = [s for s in traffic.searches if s.score is not None]
        assert len(exact) >= 20
        wrong = [s for s in exact if s.top_title != f"{s.subject} 0" or s.score < SAME_MODEL_SCORE]
        assert wrong == []
        assert traffic.written and traffic.failed_writes == []

        # Every kind on the new model, the old indices gone, nothing left building.
        serving = await resources.indices.serving(KINDS)
        assert {serving.model_of(name) for name in serving.index_of.values()} == {NEW}
        assert set(serving.index_of.values()).isdisjoint(old_indices.values())
        assert result.model == NEW and set(result.indices) == set(KINDS)
        for name in old_indices.values():
            assert not await resources.es.indices.exists(index=name)
        async with resources.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(IndexBuild)) == 0
            documents = set(map(str, await session.scalars(select(Document.id))))

        # Every document once in the new index: its chunks, each position once.
        alias = resources.indices.alias("documents")
        found = await resources.es.search(
            index=alias, size=1000, query={"match_all": {}}, source=["document_id", "position"]
        )
        chunks: dict[str, list[int]] = {}
        for hit in found["hits"]["hits"]:
            source = hit["_source"]
            chunks.setdefault(source["document_id"], []).append(source["position"])
        assert set(chunks) == documents
        assert all(sorted(p) == list(range(len(p))) for p in chunks.values())

        # The writes made during the switch carry the new model's vectors: each is found
        # by its own text with a query embedded by the new model.
        for title in list(traffic.written)[:10]:
            subject, n = title.rsplit(" ", 1)
            body = {"query": text_of(subject, int(n)), "mode": "vector", "kinds": ["documents"]}
            hit = (await api.post("/v1/search", json={**body, "size": 1})).json()["hits"][0]
            assert hit["fields"]["title"] == title and hit["score"] >= SAME_MODEL_SCORE
