"""Relevance evaluation through the real HTTP API.

The collection's documents are stored with ``POST /v1/documents/batch`` (deduplicated, so a
second run stores nothing new) and indexed by the indexers; every judged query is then
sent to ``POST /v1/search`` in each mode (hybrid twice: the deployment's default fusion,
linear unless set otherwise, and reciprocal rank fusion),
paging with the cursor down to ``depth`` distinct documents (chunks collapse to their
document), and the rankings are scored against the judgments: nDCG@10, MAP (over the
``depth`` retrieved) and Recall@100.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from myaiserv.datasets.trec import Collection
from myaiserv.evaluation import metrics

MODES = ("bm25", "vector", "hybrid", "hybrid-rrf")
# What each mode sends; "hybrid" is the deployment's default fusion (search.fusion).
REQUESTS: dict[str, dict[str, str]] = {
    "bm25": {"mode": "bm25"},
    "vector": {"mode": "vector"},
    "hybrid": {"mode": "hybrid"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
}
METRICS = ("ndcg@10", "map", "recall@100")


@dataclass
class EvalResult:
    collection: str
    queries: int
    depth: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> metric -> mean
    seconds: float = 0.0


def documents_payload(collection: Collection) -> list[dict[str, Any]]:
    """The collection as API documents; ``source`` carries the collection's document id."""
    return [
        {
            "title": doc.title or None,
            "text": doc.text or doc.title,
            "source": f"{collection.name}:{doc.id}",
            "content_type": "text/plain",
            "tags": [collection.name],
            "metadata": {f"{collection.name}_id": doc.id},
        }
        for doc in collection.documents
        if (doc.text or doc.title).strip()
    ]


class EvalClient:
    def __init__(self, base_url: str, api_key: str, timeout_s: float = 60.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}", "Cache-Control": "no-cache"},
            timeout=timeout_s,
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.http.post(path, json=body)
        while resp.status_code == 429:  # a deployment's rate limit: wait as told
            await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
            resp = await self.http.post(path, json=body)
        if resp.status_code >= 400:
            raise RuntimeError(f"POST {path}: {resp.status_code} {resp.text[:500]}")
        answer: dict[str, Any] = resp.json()
        return answer

    async def store(self, collection: Collection, batch: int = 200) -> int:
        docs = documents_payload(collection)
        for start in range(0, len(docs), batch):
            await self.post("/v1/documents/batch", {"documents": docs[start : start + batch]})
        return len(docs)

    async def indexed(self, collection: Collection) -> int:
        """Documents of the collection that are searchable (a facet counts documents)."""
        page = await self.post(
            "/v1/search",
            {
                "kinds": ["documents"],
                "filters": {"tags": [collection.name]},
                "facets": ["kind"],
                "size": 1,
            },
        )
        buckets = page["facets"].get("kind", [])
        return int(buckets[0]["count"]) if buckets else 0

    async def wait_indexed(
        self, collection: Collection, expected: int, timeout_s: float = 1800,
        progress: Callable[[int], None] | None = None,
    ) -> None:  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while (done := await self.indexed(collection)) < expected:
            if progress:
                progress(done)
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {expected} documents indexed")
            await asyncio.sleep(2)

    async def ranking(self, collection: Collection, text: str, mode: str, depth: int) -> list[str]:
        """The collection's document ids, best first, down to ``depth`` documents."""
        prefix = f"{collection.name}:"
        body: dict[str, Any] = {
            "query": text,
            **REQUESTS[mode],
            "kinds": ["documents"],
            "filters": {"tags": [collection.name]},
            "collapse": True,
            "highlight": False,
            "size": 100,
            "window": min(1000, depth * 2),
        }
        ranked: list[str] = []
        while len(ranked) < depth:
            page = await self.post("/v1/search", body)
            for hit in page["hits"]:
                source = hit["fields"].get("source") or ""
                if source.startswith(prefix):
                    ranked.append(source.removeprefix(prefix))
            if not page["next_cursor"]:
                break
            body["cursor"] = page["next_cursor"]
        return list(dict.fromkeys(ranked))[:depth]


async def evaluate(
    client: EvalClient,
    collection: Collection,
    *,
    modes: tuple[str, ...] = MODES,
    depth: int = 1000,
    concurrency: int = 4,
) -> EvalResult:
    started = time.perf_counter()
    queries = collection.judged_queries()
    result = EvalResult(collection.name, len(queries), depth)
    gate = asyncio.Semaphore(concurrency)

    async def score(mode: str, query: Any) -> dict[str, float]:
        async with gate:
            ranked = await client.ranking(collection, query.text, mode, depth)
        judged = collection.qrels[query.id]
        return {
            "ndcg@10": metrics.ndcg(ranked, judged, 10),
            "map": metrics.average_precision(ranked, judged),
            "recall@100": metrics.recall(ranked, judged, 100),
        }

    for mode in modes:
        per_query = await asyncio.gather(*(score(mode, q) for q in queries))
        result.scores[mode] = {
            name: round(statistics.fmean(s[name] for s in per_query), 4) for name in METRICS
        }
    result.seconds = time.perf_counter() - started
    return result


def table(result: EvalResult) -> str:
    lines = [
        (
            f"{result.collection}: {result.queries} judged queries, MAP over the top "
            f"{result.depth} documents"
        ),
        f"{'mode':<13} " + " ".join(f"{m:>10}" for m in METRICS),
    ]
    for mode, scores in result.scores.items():
        lines.append(f"{mode:<13} " + " ".join(f"{scores[m]:>10.4f}" for m in METRICS))
    return "\n".join(lines)
