"""Which way each claimed outbox row goes (done, retried, dead-lettered), the backoff, and
the version a batch settles each record at: pure functions of the outcomes and settings."""

from __future__ import annotations

import uuid

from indexers.building import BUILD_ERROR, build_failure
from indexers.bulk import POISON, RETRY, Action, GroupOutcome
from indexers.settle import backoff_seconds, sort_rows, written_versions
from indexers.sources import Entity
from myaiserv.config import IndexingSettings
from myaiserv.db.models import OutboxEvent

CFG = IndexingSettings(max_attempts=5, build_max_attempts=2, retry_backoff_s=0.5)


def row(entity: Entity, *, version: int = 1, attempts: int = 0) -> OutboxEvent:
    return OutboxEvent(
        id=version,
        tenant_id=uuid.uuid4(),
        kind=entity.kind,
        entity_id=entity.id,
        op="upsert",
        version=version,
        attempts=attempts,
    )


def failed(status: str, reason: str) -> GroupOutcome:
    outcome = GroupOutcome()
    outcome.worsen(status, reason, "why")
    return outcome


def entity() -> Entity:
    return Entity("documents", uuid.uuid4())


def test_rows_are_done_retried_or_dead_by_outcome_and_attempts() -> None:
    ok, gone, busy, poison, tired, down = (entity() for _ in range(6))
    rows = [
        row(ok),
        row(gone),
        row(busy, attempts=1),
        row(poison),
        row(tired, attempts=4),
        row(down, attempts=40),
    ]
    outcomes = {
        ok: GroupOutcome(),
        busy: failed(RETRY, "es_rejected_execution_exception"),
        poison: failed(POISON, "mapper_parsing_exception"),
        tired: failed(RETRY, "es_rejected_execution_exception"),
        down: failed(RETRY, "unavailable"),
    }
    settled = sort_rows(rows, outcomes, CFG)
    assert [r.entity_id for r in settled.done] == [ok.id, gone.id]  # no outcome: nothing to do
    assert [r.entity_id for r, _ in settled.retry] == [busy.id, down.id]  # down: never dead
    assert [r.entity_id for r, _ in settled.dead] == [poison.id, tired.id]


def test_a_build_failure_gets_its_own_smaller_number_of_attempts() -> None:
    broken = entity()
    outcome = build_failure(KeyError("labels"))
    assert (outcome.status, outcome.reason, outcome.error) == (
        RETRY,
        BUILD_ERROR,
        "KeyError: 'labels'",
    )
    assert sort_rows([row(broken)], {broken: outcome}, CFG).retry
    assert sort_rows([row(broken, attempts=1)], {broken: outcome}, CFG).dead


def test_backoff_doubles_up_to_its_ceiling() -> None:
    cfg = IndexingSettings(retry_backoff_s=0.5, retry_backoff_max_s=3)
    assert [backoff_seconds(n, cfg) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_seconds(10_000, cfg) == 3.0


def test_a_record_is_settled_at_the_version_written_else_its_newest_row() -> None:
    read_newer, unbuilt = entity(), entity()
    rows = [row(read_newer, version=3), row(unbuilt, version=2), row(unbuilt, version=4)]
    # The builder read the record at version 5 (written after the rows were claimed).
    actions = [
        Action(read_newer, "index", "a", "x", 5, {}),
        Action(read_newer, "delete", "a", "y", 5),
    ]
    assert written_versions(rows, actions) == {read_newer: 5, unbuilt: 4}
