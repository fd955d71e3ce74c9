"""The indexer: drains the outbox into Elasticsearch.

Each batch runs in one PostgreSQL transaction:

1. claim up to N due rows with ``FOR UPDATE SKIP LOCKED`` (several workers never claim
   the same row), then take a transaction-scoped advisory lock per entity (so no two
   workers write the same entity at once; rows whose entity is busy are left for later);
2. read the entities' current state, build actions (chunk and embed documents); an
   entity our own code fails on is set aside (``building``), the others go on;
3. bulk-write them with external versions to the alias (and to an index being built by
   a reindex), and refresh what was written into view;
4. settle (``settle``): delete the rows that succeeded, push retryable ones back with
   backoff, move poison ones and exhausted ones to ``dead_letters``, mark the records
   ``indexed`` or ``failed`` at the version written, renew the written (tenant, kind)
   index generations (the keys of cached result pages); commit.

A worker killed at any point loses nothing: its transaction rolls back and the rows are
claimed again. Writes are idempotent (deterministic ids, external versions).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import elasticsearch
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from indexers import metrics
from indexers.building import build_isolated
from indexers.bulk import OK, Action, GroupOutcome, write
from indexers.heartbeat import Heartbeat
from indexers.settle import apply, entity_of, sort_rows, written_versions
from indexers.sources import Builder, Entity, Pending, Target
from indexers.tracing import batch_span, row_spans
from myaiserv.db.generations import bump
from myaiserv.db.models import IndexBuild, OutboxEvent
from myaiserv.db.outbox import CHANNEL, DELETE, OutboxRepository
from myaiserv.logging import get_logger
from myaiserv.resources import Resources
from myaiserv.search.kinds import INDEX_OF, KINDS, Kind, stored_kind

log = get_logger("indexers.worker")
LAG_REPORT_EVERY_S = 5.0

# Keys for pg_try_advisory_xact_lock(int, int): a namespace and the entity's hash.
LOCK_NAMESPACE = 0x6D61  # "ma"


@dataclass
class BatchResult:
    claimed: int = 0
    indexed: int = 0  # outbox rows settled successfully
    retried: int = 0
    dead: int = 0
    skipped_busy: int = 0
    actions: int = 0
    chunks: int = 0  # text chunks written (documents, messages), and their tokens
    tokens: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def chunks_written(
    actions: list[Action], outcomes: Mapping[Any, GroupOutcome], serving: set[str]
) -> tuple[int, int]:
    """(chunks, tokens) written to the serving indices (behind the aliases) by groups that
    succeeded: an entry that carries a token count is a chunk; the copy a reindex's new
    index gets is not counted twice."""
    chunks = tokens = 0
    for action in actions:
        source = action.source
        if action.op != "index" or action.index not in serving or not source:
            continue
        outcome = outcomes.get(action.group)
        if "token_count" in source and (outcome is None or outcome.status == OK):
            chunks += 1
            tokens += int(source["token_count"] or 0)
    return chunks, tokens


class Worker:
    def __init__(
        self,
        resources: Resources,
        *,
        name: str | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.name = name or f"indexer-{os.getpid()}"
        # What the batches did goes into the process's heartbeat (``run_forever`` makes one).
        self.heartbeat = heartbeat
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # set by an outbox NOTIFY (see ``listen``)

    _lag_reported = 0.0

    def stop(self) -> None:
        self._stop.set()

    async def targets(self, session: AsyncSession) -> dict[Kind, list[Target]]:
        """Where each index kind is written, each with the embedding model that built it:
        the index behind its alias, plus any index a reindex is building. Read per batch,
        the builds first: a switch swaps the aliases before it drops its build rows, so a
        batch that no longer sees a build sees the alias on the new index. Each target's
        model is loaded here (a model switch's new one, the first time)."""
        building = [
            (stored_kind(b.kind), b.index_name) for b in await session.scalars(select(IndexBuild))
        ]
        serving = await self.resources.indices.serving(KINDS, [name for _, name in building])
        out: dict[Kind, list[Target]] = {}
        for kind in KINDS:
            index = serving.index_of.get(kind)
            if index is None:  # the batch waits (and is retried) until it is back
                raise RuntimeError(f"no index behind {self.resources.indices.alias(kind)}")
            out[kind] = [Target(index, serving.model_of(index))]
        for kind, name in building:
            # A build dropped since is no target; one swapped in already is the first.
            if name in serving.meta and name != out[kind][0].index:
                out[kind].append(Target(name, serving.model_of(name)))
        for model in {t.model for ts in out.values() for t in ts}:
            await self.resources.embedders.get(model)
        return out

    async def _claim(self, session: AsyncSession, limit: int) -> tuple[list[OutboxEvent], int]:
        """(rows to process, rows left alone because another worker holds their entity)."""
        rows = list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.available_at <= func.now())
                .order_by(OutboxEvent.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if not rows:
            return rows, 0
        entities = sorted({(r.kind, str(r.entity_id)) for r in rows})
        locked: set[tuple[str, str]] = set()
        for kind, entity_id in entities:
            got = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:key))"),
                {"ns": LOCK_NAMESPACE, "key": f"{kind}:{entity_id}"},
            )
            if got:
                locked.add((kind, entity_id))
        mine = [r for r in rows if (r.kind, str(r.entity_id)) in locked]
        return mine, len(rows) - len(mine)

    async def run_batch(self) -> BatchResult:
        result = BatchResult()
        started = time.perf_counter()
        limit = self.settings.indexing.batch_size
        async with self.resources.sessionmaker() as session, session.begin():
            claimed, result.skipped_busy = await self._claim(session, limit)
            result.claimed = len(claimed)
            if not claimed:
                return result
            with batch_span(claimed) as span:
                batch_started = time.time_ns()
                pending: dict[Entity, Pending] = {}
                for row in claimed:
                    entity = entity_of(row)
                    p = pending.setdefault(entity, Pending(entity))
                    if row.op == DELETE:
                        p.delete_version = max(p.delete_version or 0, row.version)
                targets = await self.targets(session)
                builder = Builder(
                    session,
                    self.resources.es,
                    self.resources.embedder,
                    self.settings,
                    targets,
                    self.resources.embedders,
                )
                actions, unbuilt = await build_isolated(session, builder, list(pending.values()))
                result.actions = len(actions)
                outcomes = await write(self.resources.es, actions)
                outcomes.update(unbuilt)
                for outcome in outcomes.values():
                    for reason in outcome.failures:
                        result.failures[reason] = result.failures.get(reason, 0) + 1

                cfg = self.settings.indexing
                settlement = sort_rows(claimed, outcomes, cfg)
                refreshed = {
                    (str(r.tenant_id), INDEX_OF[entity_of(r).kind]) for r in settlement.done
                }
                if refreshed:
                    await self.publish(refreshed)
                await apply(session, settlement, written_versions(claimed, actions), cfg)
                # Last, so the generation rows (shared by a tenant's batches) stay locked only
                # for the commit; it commits with the settlement, or not at all.
                await bump(session, refreshed)
                done, retry, dead = settlement.done, settlement.retry, settlement.dead
                result.indexed, result.retried, result.dead = len(done), len(retry), len(dead)
                serving = {ts[0].index for ts in targets.values() if ts}
                result.chunks, result.tokens = chunks_written(actions, outcomes, serving)
                span.set_attribute("myaiserv.indexer.indexed", len(done))
                span.set_attribute("myaiserv.indexer.retried", len(retry))
                span.set_attribute("myaiserv.indexer.dead", len(dead))
                failed = {r.id: "retry" for r, _ in retry} | {r.id: "dead" for r, _ in dead}
                row_spans(span, claimed, failed, batch_started)
        result.seconds = time.perf_counter() - started
        metrics.record_batch(result)
        if self.heartbeat is not None:
            self.heartbeat.record(result.indexed, result.chunks, result.tokens)
        if result.retried or result.dead:
            log.warning(
                "batch had failures",
                worker=self.name,
                retried=result.retried,
                dead=result.dead,
                failures=result.failures,
            )
        return result

    async def publish(self, written: set[tuple[str, Kind]]) -> None:
        """Make the batch's writes searchable (refresh) before their settlement bumps the
        (tenant, kind) generations that key cached result pages: once it commits, no
        cached page older than these writes can be served."""
        aliases = sorted({self.resources.indices.alias(kind) for _, kind in written})
        try:
            await self.resources.es.indices.refresh(index=",".join(aliases))
        except elasticsearch.ApiError as exc:
            log.warning("refresh failed", error=str(exc)[:300])
        except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
            log.warning("refresh failed", error=str(exc)[:300])

    async def lag(self) -> tuple[int, float]:
        async with self.resources.sessionmaker() as session:
            return await OutboxRepository(session).lag()

    async def drain(self, *, idle_exit: bool = True, max_seconds: float | None = None) -> int:
        """Process batches until the outbox has nothing due (or ``stop()``); returns the
        number of rows indexed."""
        total = 0
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                batch = await self.run_batch()
            except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
                log.warning("elasticsearch unavailable", worker=self.name, error=str(exc)[:300])
                await self._sleep(2.0)
                continue
            except Exception as exc:
                log.exception("batch failed", worker=self.name, error=str(exc)[:500])
                await self._sleep(2.0)
                continue
            total += batch.indexed
            if batch.claimed and time.monotonic() - self._lag_reported >= LAG_REPORT_EVERY_S:
                await self._report_lag()  # under a backlog too, when lag matters most
            if batch.claimed == 0 and batch.skipped_busy:
                await self._sleep(0.05)  # another worker holds those entities
            if batch.claimed == 0 and batch.skipped_busy == 0:
                if idle_exit:
                    break
                await self._report_lag()
                await self._idle(self.settings.indexing.poll_interval_s)
        return total

    async def _report_lag(self) -> None:
        self._lag_reported = time.monotonic()
        try:
            pending, oldest = await self.lag()
        except Exception:  # noqa: BLE001 - lag metrics are best effort
            return
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(oldest)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _idle(self, seconds: float) -> None:
        """Wait for an outbox NOTIFY, ``stop()`` or ``seconds`` (polling stays the fallback:
        rows pushed back with a backoff come due without a notification)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await _first_of(self._stop, self._wake)
        self._wake.clear()

    async def listen(self) -> None:
        """Hold a connection that LISTENs on the outbox channel and wakes idle batch loops
        when a write commits; reconnect after a failure (meanwhile, the loops poll)."""
        dsn = make_url(self.settings.database_url).set(drivername="postgresql")
        while not self._stop.is_set():
            try:
                conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
            except Exception as exc:  # noqa: BLE001 - best effort: without it the loops still poll
                log.warning("cannot listen for outbox writes", error=str(exc)[:300])
                await self._sleep(5.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
                self._wake.set()  # anything written before we listened
                await _first_of(self._stop, lost)
            except Exception as exc:  # noqa: BLE001 - the listener is best effort; polling remains
                log.warning("outbox listener failed", error=str(exc)[:300])
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=5)
            await self._sleep(1.0)

    async def run_forever(self, concurrency: int | None = None) -> None:
        """Run until SIGTERM/SIGINT, with ``concurrency`` batch loops sharing this process's
        clients and model (encoding is serialised on the model's thread, so the loops
        overlap one batch's I/O with another's embedding)."""
        concurrency = concurrency or self.settings.indexing.concurrency
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        if self.heartbeat is None:
            self.heartbeat = Heartbeat(self.resources, "indexer")
        log.info("indexer started", worker=self.name, concurrency=concurrency)
        listener = asyncio.create_task(self.listen())
        beating = asyncio.create_task(self.heartbeat.run(self._stop))
        try:
            await asyncio.gather(*(self.drain(idle_exit=False) for _ in range(concurrency)))
        finally:
            self.stop()
            await listener
            await beating
        log.info("indexer stopped", worker=self.name)
