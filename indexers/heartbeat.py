"""A draining process's heartbeat: its row in ``indexer_heartbeats``
(``myaiserv.db.heartbeats``), rewritten every ``indexing.heartbeat_s`` with what its
batches did, deleted when it stops. An ingest reads these rows to follow running indexers
rather than compete with them for the cores; `myaiserv indexer status` lists them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from myaiserv.db.heartbeats import Beat, HeartbeatRepository
from myaiserv.logging import get_logger
from myaiserv.resources import Resources

log = get_logger("indexers.heartbeat")
RATE_WINDOW_S = 60.0


def process_name(role: str) -> str:
    """Unique among the machines: containers' pids repeat, their host names do not."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


@dataclass
class Totals:
    rows: int = 0
    chunks: int = 0
    tokens: int = 0


class Throughput:
    """Totals since the start, and chunks/s and tokens/s over the last ``window_s``."""

    def __init__(
        self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.totals = Totals()
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int, int]] = deque([(clock(), 0, 0)])

    def add(self, rows: int, chunks: int, tokens: int) -> None:
        self.totals.rows += rows
        self.totals.chunks += chunks
        self.totals.tokens += tokens

    def rates(self) -> tuple[float, float]:
        """(chunks/s, tokens/s) since the oldest sample in the window (samples are taken
        here, once per call)."""
        now = self._clock()
        self._samples.append((now, self.totals.chunks, self.totals.tokens))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        since, chunks, tokens = self._samples[0]
        elapsed = now - since
        if elapsed <= 0:
            return 0.0, 0.0
        return (self.totals.chunks - chunks) / elapsed, (self.totals.tokens - tokens) / elapsed


class Heartbeat:
    """One per process, shared by its batch loops (``Worker.heartbeat``)."""

    def __init__(self, resources: Resources, role: str, name: str | None = None) -> None:
        self.resources = resources
        self.role = role
        self.name = name or process_name(role)
        self.throughput = Throughput()

    def record(self, rows: int, chunks: int, tokens: int) -> None:
        self.throughput.add(rows, chunks, tokens)

    def beat_now(self) -> Beat:
        chunks_per_s, tokens_per_s = self.throughput.rates()
        totals = self.throughput.totals
        return Beat(
            name=self.name,
            role=self.role,
            host=socket.gethostname(),
            pid=os.getpid(),
            rows=totals.rows,
            chunks=totals.chunks,
            tokens=totals.tokens,
            chunks_per_s=round(chunks_per_s, 2),
            tokens_per_s=round(tokens_per_s, 1),
        )

    async def write(self) -> None:
        async with self.resources.sessionmaker() as session, session.begin():
            await HeartbeatRepository(session).beat(self.beat_now())

    async def run(self, stop: asyncio.Event) -> None:
        """Beat until ``stop``, then delete the row. A beat that fails (the database away)
        is logged and tried again at the next one: the process keeps working, and others
        take it for dead only after ``heartbeat_ttl_s``."""
        every = self.resources.settings.indexing.heartbeat_s
        try:
            while not stop.is_set():
                try:
                    await self.write()
                except Exception as exc:  # noqa: BLE001 - a heartbeat must not end the process
                    log.warning("heartbeat failed", name=self.name, error=str(exc)[:300])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    async with self.resources.sessionmaker() as session, session.begin():
                        await HeartbeatRepository(session).remove(self.name)
