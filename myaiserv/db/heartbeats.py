"""Which processes are draining the outbox now (``IndexerHeartbeat`` rows), and the
backlog they face per kind: what `myaiserv indexer status` prints and what an ingest
reads to decide whether to index in its own process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import DeadLetter, IndexerHeartbeat, OutboxEvent

# A dead process's row is kept this long (status shows it as gone), then deleted.
FORGET_AFTER_S = 3600.0


@dataclass(frozen=True)
class Beat:
    """What a process says of itself at one heartbeat."""

    name: str
    role: str
    host: str
    pid: int
    rows: int
    chunks: int
    tokens: int
    chunks_per_s: float
    tokens_per_s: float


@dataclass(frozen=True)
class KindBacklog:
    pending: int  # outbox rows
    due: int  # of which not waiting out a retry's backoff
    oldest_age_s: float
    dead_letters: int


def _age(column: Any) -> Any:
    return func.extract("epoch", func.now() - column)


class HeartbeatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def beat(self, beat: Beat) -> None:
        """Write the process's row (the first beat also sets ``started_at``), and forget
        processes gone for an hour."""
        values = {
            "name": beat.name,
            "role": beat.role,
            "host": beat.host,
            "pid": beat.pid,
            "rows": beat.rows,
            "chunks": beat.chunks,
            "tokens": beat.tokens,
            "chunks_per_s": beat.chunks_per_s,
            "tokens_per_s": beat.tokens_per_s,
        }
        statement = insert(IndexerHeartbeat).values(**values)
        updated = {k: statement.excluded[k] for k in values if k != "name"}
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[IndexerHeartbeat.name], set_={**updated, "beat_at": func.now()}
            )
        )
        await self.session.execute(
            delete(IndexerHeartbeat).where(_age(IndexerHeartbeat.beat_at) > FORGET_AFTER_S)
        )

    async def remove(self, name: str) -> None:
        await self.session.execute(delete(IndexerHeartbeat).where(IndexerHeartbeat.name == name))

    async def processes(self) -> list[tuple[IndexerHeartbeat, float]]:
        """Every row, with the seconds since its last beat; newest first."""
        rows = await self.session.execute(
            select(IndexerHeartbeat, _age(IndexerHeartbeat.beat_at)).order_by(
                IndexerHeartbeat.started_at.desc()
            )
        )
        return [(row, float(age)) for row, age in rows]

    async def live(self, ttl_s: float) -> list[IndexerHeartbeat]:
        """The processes that beat within ``ttl_s``."""
        return [row for row, age in await self.processes() if age <= ttl_s]

    async def backlog(self) -> dict[str, KindBacklog]:
        """Outbox rows and dead letters per kind (kinds with neither are left out)."""
        outbox = await self.session.execute(
            select(
                OutboxEvent.kind,
                func.count(),
                func.count().filter(OutboxEvent.available_at <= func.now()),
                func.coalesce(func.max(_age(OutboxEvent.created_at)), 0),
            ).group_by(OutboxEvent.kind)
        )
        dead_rows = await self.session.execute(
            select(DeadLetter.kind, func.count()).group_by(DeadLetter.kind)
        )
        dead: dict[str, int] = {kind: int(n) for kind, n in dead_rows}
        out = {
            kind: KindBacklog(int(pending), int(due), round(float(age), 3), dead.pop(kind, 0))
            for kind, pending, due, age in outbox
        }
        out.update({kind: KindBacklog(0, 0, 0.0, int(n)) for kind, n in dead.items()})
        return dict(sorted(out.items()))
