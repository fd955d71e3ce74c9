"""Mixed traffic against a running API, and the reconciliation after it: what the fault
tests and the reliability benchmark share.

Writers store documents that each carry a unique token; readers search; chatters ask the
RAG endpoint. Every response is kept (kind, status, Retry-After present). A write is
*acknowledged* when the API answered 201 with its id. ``reconcile`` then checks each
acknowledged write through the API: readable from PostgreSQL (GET) and found by a search
for its token (Elasticsearch).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

WORDS = [
    "retrieval",
    "indexing",
    "library",
    "catalog",
    "citation",
    "abstract",
    "thesaurus",
    "classification",
    "relevance",
    "precision",
    "recall",
    "query",
    "document",
    "information",
    "science",
    "journal",
]


@dataclass(frozen=True)
class Outcome:
    kind: str  # write | search | chat
    status: int  # 0: no HTTP answer (connection refused/reset, timeout)
    retry_after: bool
    seconds: float


@dataclass
class MixedLoad:
    http: httpx.AsyncClient
    writers: int = 2
    readers: int = 2
    chatters: int = 1
    pause_s: float = 0.02
    backoff_s: float = 0.25  # after a 429/503 (shorter than Retry-After: faults are short)
    acked: dict[str, str] = field(default_factory=dict)  # document id -> its token
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _call(self, kind: str, method: str, url: str, body: dict) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            resp = await self.http.request(method, url, json=body)
        except httpx.HTTPError:
            self.outcomes.append(Outcome(kind, 0, False, time.perf_counter() - started))
            return None
        self.outcomes.append(
            Outcome(
                kind, resp.status_code, "retry-after" in resp.headers, time.perf_counter() - started
            )
        )
        if resp.status_code in (429, 503):
            await asyncio.sleep(self.backoff_s)  # as a client honouring Retry-After would
        return resp

    async def _writer(self) -> None:
        while not self._stop.is_set():
            token = "tok" + uuid.uuid4().hex[:12]
            text = (
                f"{' '.join(random.sample(WORDS, 6))} {token} {' '.join(random.sample(WORDS, 6))}"
            )
            resp = await self._call(
                "write", "POST", "/v1/documents", {"title": f"load {token}", "text": text}
            )
            if resp is not None and resp.status_code == 201:
                self.acked[resp.json()["id"]] = token
            await asyncio.sleep(self.pause_s)

    async def _reader(self) -> None:
        while not self._stop.is_set():
            query = " ".join(random.sample(WORDS, 3))
            await self._call("search", "POST", "/v1/search", {"query": query, "size": 5})
            await asyncio.sleep(self.pause_s)

    async def _chatter(self) -> None:
        while not self._stop.is_set():
            question = f"What is known about {' and '.join(random.sample(WORDS, 2))}?"
            body = {"model": "myaiserv-rag", "messages": [{"role": "user", "content": question}]}
            await self._call("chat", "POST", "/v1/chat/completions", body)
            await asyncio.sleep(self.pause_s)

    async def __aenter__(self) -> MixedLoad:
        loops = (
            [self._writer] * self.writers
            + [self._reader] * self.readers
            + [self._chatter] * self.chatters
        )
        self._tasks = [asyncio.create_task(loop()) for loop in loops]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def statuses(self, kind: str | None = None, since: int = 0) -> Counter[int]:
        return Counter(o.status for o in self.outcomes[since:] if kind in (None, o.kind))


@dataclass(frozen=True)
class Reconciliation:
    acknowledged: int
    stored: int  # readable from PostgreSQL
    indexed: int  # found by a search for its token
    missing_from_database: list[str]
    missing_from_index: list[str]

    @property
    def lost(self) -> int:
        return len(set(self.missing_from_database) | set(self.missing_from_index))


async def _request(http: httpx.AsyncClient, method: str, url: str, **kw: object) -> httpx.Response:
    """One request, waiting out 429s (the reconciliation must not be rate limited)."""
    while True:
        resp = await http.request(method, url, **kw)  # type: ignore[arg-type]
        if resp.status_code != 429:
            return resp
        await asyncio.sleep(float(resp.headers.get("retry-after", "1")))


async def _found(http: httpx.AsyncClient, doc_id: str, token: str) -> bool:
    body = {
        "query": token,
        "mode": "bm25",
        "kinds": ["documents"],
        "filters": {"document_id": [doc_id]},
        "size": 1,
    }
    resp = await _request(
        http, "POST", "/v1/search", json=body, headers={"Cache-Control": "no-cache"}
    )
    resp.raise_for_status()
    return bool(resp.json()["hits"])


async def reconcile(
    http: httpx.AsyncClient, acked: dict[str, str], *, within_s: float = 120.0
) -> Reconciliation:
    """Every acknowledged write read back from PostgreSQL and searched for in
    Elasticsearch; indexing is waited for up to ``within_s`` (the indexers catch up)."""
    missing_db = []
    for doc_id in acked:
        resp = await _request(http, "GET", f"/v1/documents/{doc_id}")
        if resp.status_code != 200:
            missing_db.append(doc_id)
    pending = {d: t for d, t in acked.items() if d not in missing_db}
    deadline = time.monotonic() + within_s
    while pending:
        for doc_id, token in list(pending.items()):
            if await _found(http, doc_id, token):
                del pending[doc_id]
        if not pending or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    return Reconciliation(
        acknowledged=len(acked),
        stored=len(acked) - len(missing_db),
        indexed=len(acked) - len(missing_db) - len(pending),
        missing_from_database=missing_db,
        missing_from_index=list(pending),
    )


@dataclass(frozen=True)
class FaultWindow:
    healthy_end: int  # outcomes before the dependency was stopped
    outage_end: int  # outcomes before it was started again
    recovered: bool  # traffic all succeeded again afterwards
    recovered_s: float  # from the dependency's return until then


async def inject_fault(
    load: MixedLoad,
    stop: Callable[[], None],
    start: Callable[[], None],
    *,
    healthy_s: float = 3.0,
    outage_s: float = 6.0,
    recovery_s: float = 120.0,
) -> FaultWindow:
    """With ``load`` running: healthy traffic, ``stop()`` (a dependency: stopped, or hung),
    an outage, ``start()``, then wait until the last 10 requests all succeeded (and 2 s
    more)."""
    await asyncio.sleep(healthy_s)
    healthy_end = len(load.outcomes)
    await asyncio.to_thread(stop)
    try:
        await asyncio.sleep(outage_s)
    finally:
        outage_end = len(load.outcomes)
        await asyncio.to_thread(start)
    back = time.monotonic()
    recovered = False
    while time.monotonic() < back + recovery_s:
        recent = load.outcomes[-10:]
        if len(recent) == 10 and all(o.status in (200, 201) for o in recent):
            recovered = True
            break
        await asyncio.sleep(0.5)
    recovered_s = time.monotonic() - back
    await asyncio.sleep(2.0)
    return FaultWindow(healthy_end, outage_end, recovered, recovered_s)


BREAKER_LINE = re.compile(
    r'^myaiserv_dependency_breaker_state\{dependency="(\w+)"\} (\S+)$', re.MULTILINE
)


async def breaker_states(http: httpx.AsyncClient) -> dict[str, int]:
    """The instance's circuit breakers (0 closed, 1 half-open, 2 open) as its /metrics
    says; empty when it does not answer."""
    try:
        resp = await http.get("/metrics", timeout=10)
    except httpx.HTTPError:
        return {}
    return {name: int(float(value)) for name, value in BREAKER_LINE.findall(resp.text)}


async def watch_breaker(http: httpx.AsyncClient, dependency: str, seen: list[int]) -> None:
    """Append the dependency's breaker state to ``seen`` every half second, until cancelled."""
    while True:
        state = (await breaker_states(http)).get(dependency)
        if state is not None:
            seen.append(state)
        await asyncio.sleep(0.5)
