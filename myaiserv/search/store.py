"""The search store: every Elasticsearch call a search makes (``/v1/search``, RAG retrieval,
``/v1/runs/search``), and the one translation of Elasticsearch's failures into ours.

Callers hand it request bodies (built by pure functions in ``search.query`` and
``runs.search``) and get Elasticsearch's answers back as dicts; nothing above it sees a
client, an alias or an ``elasticsearch`` exception. How a failure reads to a client:

- unreachable, timed out, overloaded (429), failing (5xx, unavailable shards): 503 with
  Retry-After; the indices missing (404): 503 naming the fix;
- a node leaving the cluster while a search ran on it (``NodeLeftError``): the search runs
  once more, within its budget: Elasticsearch fails a search over to another shard copy
  only in its first phase, and a later phase (``dfs_query``, ``fetch``) must return to the
  node of the first, so the search fails (the node disconnected, or closing its shards
  freed the search's context there: a 404) although a copy elsewhere could answer it;
- no answer within the search's budget (``search_timeout_s``: one for all of its round
  trips together, the client's retries included), or Elasticsearch's circuit open after repeated
  failures: 503 with Retry-After, at once while the circuit is open;
- a point in time gone while paging with a cursor: ``CursorExpiredError`` (410);
- any other refusal of a body we built: 400 naming Elasticsearch's error type.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from myaiserv.errors import AppError, DependencyUnavailableError
from myaiserv.kit.breaker import CircuitBreaker, bounded
from myaiserv.logging import get_logger
from myaiserv.search.cursor import CursorExpiredError
from myaiserv.search.guard import IndexGuard
from myaiserv.search.indices import IndexManager
from myaiserv.search.kinds import Kind

log = get_logger(__name__)
T = TypeVar("T")

MISSING_INDICES = "the search indices do not exist yet; run `myaiserv index init`"
# Elasticsearch's error types for a node that left (or was left) while a request ran on it;
# outside a point in time, a search context goes missing only so (a node stopping frees
# the contexts of the shards it closes).
NODE_LEFT = (
    "node_disconnected_exception",
    "node_not_connected_exception",
    "node_closed_exception",
    "search_context_missing_exception",
)


class NodeLeftError(DependencyUnavailableError):
    """A search failed because a node holding one of its shard copies left the cluster
    while the search ran: the same search, run again, starts on copies that are there."""

    def __init__(self) -> None:
        super().__init__("elasticsearch", "the search failed on the cluster")


def node_left(error: Any) -> bool:
    """Whether an Elasticsearch error (its ``error`` object or text) names a node that left
    as a cause: in its root causes, its failed shards or its causes."""
    text = json.dumps(error) if isinstance(error, dict) else str(error)
    return any(name in text for name in NODE_LEFT)


def failure(status: int, error: Any, *, paging: bool = False) -> AppError:
    """Our error for an Elasticsearch error (``error``: its ``error`` object, or text)
    answered with HTTP ``status``. ``paging``: the request read a cursor's point in time,
    so a missing search context means the cursor expired."""
    kind = str(error.get("type", "")) if isinstance(error, dict) else str(error)
    if paging and ("search_context_missing" in str(error) or status == 404):
        return CursorExpiredError()
    if (status >= 500 or status == 404) and node_left(error):
        log.warning("search lost a node", status=status, error=str(error)[:500])
        return NodeLeftError()
    log.error("search failed", status=status, error=str(error)[:500])
    if status == 404:
        return DependencyUnavailableError("elasticsearch", MISSING_INDICES)
    if status == 429:
        return DependencyUnavailableError("elasticsearch", "the search cluster is overloaded")
    if status in (401, 403):  # our credentials or role: the operator's to fix, not the client's
        return DependencyUnavailableError("elasticsearch", "the search cluster refused our user")
    if status >= 500 or kind.endswith("unavailable_shards_exception"):
        return DependencyUnavailableError("elasticsearch", "the search failed on the cluster")
    return AppError(f"search failed: {kind}")


@contextlib.contextmanager
def translated(*, paging: bool = False) -> Iterator[None]:
    """Raise our error for any Elasticsearch error raised inside."""
    try:
        yield
    except ApiError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        raise failure(exc.meta.status, body.get("error", exc.message), paging=paging) from exc
    except TransportError as exc:  # unreachable, timed out: nothing was answered
        log.warning("elasticsearch unavailable", error=str(exc)[:300])
        raise DependencyUnavailableError("elasticsearch") from exc


def unavailable(exc: BaseException) -> bool:
    """Elasticsearch did not answer, or answered that it cannot serve (5xx, 429)."""
    if isinstance(exc, TransportError):
        return True
    return isinstance(exc, ApiError) and (exc.meta.status >= 500 or exc.meta.status == 429)


def refused(retry_after_s: float) -> DependencyUnavailableError:
    return DependencyUnavailableError(
        "elasticsearch",
        "the search cluster is not answering; searches are refused until it does",
        retry_after_s=max(1, math.ceil(retry_after_s)),
    )


@dataclass(frozen=True)
class Answers:
    """One ``_msearch``: each body's response by name, and the point in time to go on
    from (Elasticsearch may hand out a new id with every answer)."""

    by_name: dict[str, dict[str, Any]]
    pit: str | None

    @property
    def took_ms(self) -> int:
        """Elasticsearch's own time for the slowest search."""
        return max((r.get("took", 0) for r in self.by_name.values()), default=0)


RETRY_RESERVE_S = 1.0


def attempt_timeout(budget_s: float) -> float:
    """How long one attempt of a search's round trip may take within its budget: all but
    what a retry needs. A healthy node answers a search in well under a second, so a
    retry is kept a second (at most half the budget) and the first attempt gets the rest:
    a node that is slow but alive (a cluster electing a new master, a busy machine) is
    not given up on while it could still answer."""
    return budget_s - min(RETRY_RESERVE_S, budget_s / 2)


class SearchStore:
    def __init__(
        self,
        es: AsyncElasticsearch,
        indices: IndexManager,
        guard: IndexGuard,
        *,
        pit_keep_alive: str,
        breaker: CircuitBreaker,
        timeout_s: float,
    ) -> None:
        """One store per request: all its round trips together, the client's retries
        included, may take ``timeout_s`` (time spent elsewhere, e.g. embedding the query
        while a point in time opens, is not counted)."""
        # An attempt on a node that accepts and answers nothing (stopping, partitioned,
        # hung) times out while time is left for the client to mark that node dead and
        # retry on another. The client's own timeout (indexing, administration) is longer
        # than a search's whole budget.
        self.es = es.options(request_timeout=attempt_timeout(timeout_s))
        self.indices = indices
        self.guard = guard
        self.pit_keep_alive = pit_keep_alive
        self.breaker = breaker
        self.timeout_s = timeout_s
        self._spent_s = 0.0

    @contextlib.asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        """One round trip, through the breaker, within what is left of the budget."""
        clock = asyncio.get_running_loop().time
        started = clock()
        deadline = started + max(0.0, self.timeout_s - self._spent_s)
        try:
            async with bounded(
                self.breaker, deadline=deadline, is_failure=unavailable, refuse=refused
            ):
                yield
        finally:
            self._spent_s += clock() - started

    @contextlib.asynccontextmanager
    async def _round_trip(self, *, paging: bool = False) -> AsyncIterator[None]:
        """One call to Elasticsearch: through the breaker, within the deadline, its
        failures translated."""
        try:
            with translated(paging=paging):
                async with self._bounded():
                    yield
        except TimeoutError as exc:
            log.warning("elasticsearch gave no answer in time", timeout_s=self.timeout_s)
            raise DependencyUnavailableError(
                "elasticsearch", f"the search cluster gave no answer within {self.timeout_s:g}s"
            ) from exc

    def _aliases(self, kinds: list[Kind]) -> str:
        """The concrete indices the guard resolved for ``kinds`` (``check``), or their
        aliases where it has not."""
        if self.guard.due(kinds):
            return ",".join(self.indices.alias(k) for k in kinds)
        return ",".join(self.guard.indices_of(kinds))

    async def check(self, kinds: list[Kind]) -> str:
        """Resolve the indices serving ``kinds`` and refuse (503) any that cannot serve
        this instance (see ``IndexGuard``); returns the embedding model that built them,
        the one a query must be embedded with."""
        if self.guard.due(kinds):
            async with self._round_trip():
                await self.guard.check(self.es, kinds)
        model = self.guard.model_of(kinds)
        if model is None:  # kinds resolved on either side of a switch: all again, now
            async with self._round_trip():
                await self.guard.check(self.es, kinds, force=True)
            model = self.guard.model_of(kinds)
            if model is None:
                raise self.guard.mixed(kinds)
        return model

    async def open_pit(self, kinds: list[Kind]) -> str:
        async with self._round_trip():
            resp = await self.es.open_point_in_time(
                index=self._aliases(kinds), keep_alive=self.pit_keep_alive
            )
        return str(resp["id"])

    async def close_pit(self, pit: str) -> None:
        # Expired, unreachable or out of time: either way nothing is left to release.
        with contextlib.suppress(ApiError, TransportError, AppError, TimeoutError):
            async with self._bounded():
                await self.es.close_point_in_time(id=pit)

    async def msearch(
        self,
        bodies: dict[str, dict[str, Any]],
        kinds: list[Kind],
        pit: str | None,
        *,
        paging: bool = False,
    ) -> Answers:
        """All ``bodies`` in one round trip, over the kinds' aliases or within ``pit``.
        ``paging``: ``pit`` came from a cursor (its expiry is the cursor's)."""
        searches: list[dict[str, Any]] = []
        for body in bodies.values():
            if pit is None:
                searches += [{"index": self._aliases(kinds)}, body]
            else:
                searches += [{}, {**body, "pit": {"id": pit, "keep_alive": self.pit_keep_alive}}]

        async def once() -> Answers:
            async with self._round_trip(paging=paging):
                resp = await self.es.msearch(searches=searches)
            by_name = dict(zip(bodies, resp["responses"], strict=True))
            for result in by_name.values():
                if "error" in result:
                    raise failure(result.get("status", 500), result["error"], paging=paging)
            new_pit = next((r["pit_id"] for r in by_name.values() if "pit_id" in r), pit)
            return Answers(by_name, new_pit)

        # A point in time's contexts live on the nodes that opened it: one that left took
        # its contexts along, and the same search again would fail the same way.
        return await self._again_if_a_node_left(once) if pit is None else await once()

    async def search(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        """One search over a kind's alias. No partial results: totals and aggregations
        are exact or an error."""

        async def once() -> dict[str, Any]:
            async with self._round_trip():
                resp = await self.es.search(
                    index=self.indices.alias(kind), body=body, allow_partial_search_results=False
                )
            return dict(resp.body)

        return await self._again_if_a_node_left(once)

    async def _again_if_a_node_left(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call``, and once more, within what is left of the budget, if it failed
        because a node left while it ran (``NodeLeftError``)."""
        try:
            return await call()
        except NodeLeftError:
            log.warning("a node left while a search ran on it; searching again")
            return await call()
