"""Building a batch's bulk actions so that a failure of our own code (chunking, embedding,
a stored value the builder cannot handle) costs only the entity that caused it.

The whole batch is built at once (one embedding call, the fast path). If that raises, each
entity is built alone, so the culprits are found and the others still go out; a culprit
becomes a ``build_error`` outcome that the settlement retries with backoff and then
dead-letters with the exception text. Failures of the services themselves (PostgreSQL or
Elasticsearch unreachable or erroring) are not the entity's fault: they propagate and the
whole batch is tried again later, without using up attempts.

Each try runs in a savepoint, so a failed SQL statement inside it does not abort the
batch's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import elasticsearch
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from indexers.bulk import RETRY, Action, GroupOutcome
from indexers.sources import Builder, Entity, Pending

BUILD_ERROR = "build_error"
# The services failing, not our code: the batch is retried as a whole.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    elasticsearch.ConnectionError,
    elasticsearch.ConnectionTimeout,
    elasticsearch.ApiError,
    OperationalError,
    InterfaceError,
    OSError,
)


def build_failure(exc: Exception) -> GroupOutcome:
    """The outcome of an entity whose actions could not be built."""
    outcome = GroupOutcome()
    outcome.worsen(RETRY, BUILD_ERROR, f"{type(exc).__name__}: {exc}")
    return outcome


async def _try(
    session: AsyncSession, builder: Builder, pending: Sequence[Pending]
) -> list[Action] | Exception:
    """The actions of ``pending``, or the exception of our own code that building raised."""
    try:
        async with session.begin_nested():
            return await builder.build(pending)
    except UNAVAILABLE:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of our code is the entity's
        return exc


async def build_isolated(
    session: AsyncSession, builder: Builder, pending: Sequence[Pending]
) -> tuple[list[Action], dict[Entity, GroupOutcome]]:
    """(actions of the entities that could be built, outcome of each that could not)."""
    built = await _try(session, builder, pending)
    if not isinstance(built, Exception):
        return built, {}
    if len(pending) == 1:
        return [], {pending[0].entity: build_failure(built)}
    actions: list[Action] = []
    failed: dict[Entity, GroupOutcome] = {}
    for one in pending:
        result = await _try(session, builder, [one])
        if isinstance(result, Exception):
            failed[one.entity] = build_failure(result)
        else:
            actions += result
    return actions, failed
