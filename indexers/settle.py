"""Settling a batch, in its transaction: each claimed outbox row is done (deleted),
retried later with backoff, or dead-lettered; and the records' index states follow
(``indexed`` at the version Elasticsearch acknowledged, ``failed`` with the reason).

Which way a row goes is a pure function of the bulk outcomes and the settings
(``sort_rows``), tested as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import delete, func, insert, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from indexers.building import BUILD_ERROR
from indexers.bulk import OK, POISON, Action, GroupOutcome
from indexers.sources import Entity
from myaiserv.config import IndexingSettings
from myaiserv.db.index_state import settle
from myaiserv.db.models import DeadLetter, IndexStatus, OutboxEvent
from myaiserv.search.kinds import EntityKind, stored_entity_kind

MAX_ERROR_CHARS = 2000
UNAVAILABLE = "unavailable"  # the cluster was unreachable: not the row's fault


@dataclass
class Settlement:
    done: list[OutboxEvent] = field(default_factory=list)
    retry: list[tuple[OutboxEvent, GroupOutcome]] = field(default_factory=list)
    dead: list[tuple[OutboxEvent, GroupOutcome]] = field(default_factory=list)


def entity_of(row: OutboxEvent) -> Entity:
    return Entity(stored_entity_kind(row.kind), row.entity_id)


def backoff_seconds(attempts: int, cfg: IndexingSettings) -> float:
    """The wait before the next try of a row that failed ``attempts`` times before."""
    return float(min(cfg.retry_backoff_max_s, cfg.retry_backoff_s * 2.0 ** min(attempts, 20)))


def attempts_allowed(outcome: GroupOutcome, cfg: IndexingSettings) -> int:
    """Our own code failing seldom heals by itself: it gets fewer tries than the cluster."""
    return cfg.build_max_attempts if outcome.reason == BUILD_ERROR else cfg.max_attempts


def sort_rows(
    claimed: Iterable[OutboxEvent], outcomes: Mapping[Entity, GroupOutcome], cfg: IndexingSettings
) -> Settlement:
    out = Settlement()
    for row in claimed:
        outcome = outcomes.get(entity_of(row))
        if outcome is None or outcome.status == OK:
            out.done.append(row)
        elif outcome.status == POISON or (
            outcome.reason != UNAVAILABLE and row.attempts + 1 >= attempts_allowed(outcome, cfg)
        ):
            out.dead.append((row, outcome))
        else:
            out.retry.append((row, outcome))
    return out


def written_versions(rows: Iterable[OutboxEvent], actions: Iterable[Action]) -> dict[Entity, int]:
    """The version of each entity the batch wrote: its actions' (the builder reads the
    current row, which may be newer than the outbox row), else its newest outbox row's."""
    versions: dict[Entity, int] = {}
    for row in rows:
        entity = entity_of(row)
        versions[entity] = max(versions.get(entity, 0), row.version)
    acted: dict[Entity, int] = {}
    for action in actions:
        acted[action.group] = max(acted.get(action.group, 0), action.version)
    return {entity: acted.get(entity, version) for entity, version in versions.items()}


def failure_text(outcome: GroupOutcome) -> str:
    return f"{outcome.reason}: {outcome.error}"[:MAX_ERROR_CHARS]


async def _settle_records(
    session: AsyncSession,
    status: IndexStatus,
    written: Mapping[Entity, int],
    errors: Mapping[Entity, str] | None = None,
) -> None:
    by_kind: dict[EntityKind, dict[UUID, int]] = {}
    for entity, version in written.items():
        by_kind.setdefault(entity.kind, {})[entity.id] = version
    for kind, versions in sorted(by_kind.items()):
        kind_errors = {e.id: text for e, text in (errors or {}).items() if e.kind == kind}
        await settle(session, kind, status, versions, kind_errors)


async def apply(
    session: AsyncSession,
    settlement: Settlement,
    written: Mapping[Entity, int],
    cfg: IndexingSettings,
) -> None:
    """Write the settlement: outbox rows deleted, pushed back or moved to dead letters,
    records' index states set."""
    if settlement.done:
        done = {entity_of(r) for r in settlement.done}
        await _settle_records(session, "indexed", {e: written[e] for e in done})
        await session.execute(
            delete(OutboxEvent).where(OutboxEvent.id.in_([r.id for r in settlement.done]))
        )
    for row, outcome in settlement.retry:
        # An unavailable cluster is not the row's fault: it does not use up attempts.
        attempts = row.attempts + (0 if outcome.reason == UNAVAILABLE else 1)
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == row.id)
            .values(
                attempts=attempts,
                last_error=failure_text(outcome),
                available_at=func.now()
                + text(f"interval '{backoff_seconds(row.attempts, cfg):.3f} seconds'"),
            )
        )
    if settlement.dead:
        await session.execute(
            insert(DeadLetter),
            [
                {
                    "tenant_id": row.tenant_id,
                    "kind": row.kind,
                    "entity_id": row.entity_id,
                    "op": row.op,
                    "version": row.version,
                    "reason": (outcome.reason or "unknown")[:64],
                    "error": outcome.error or "",
                    "attempts": row.attempts + 1,
                }
                for row, outcome in settlement.dead
            ],
        )
        failed = {entity_of(r): failure_text(o) for r, o in settlement.dead}
        await _settle_records(session, "failed", {e: written[e] for e in failed}, failed)
        await session.execute(
            delete(OutboxEvent).where(OutboxEvent.id.in_([r.id for r, _ in settlement.dead]))
        )
