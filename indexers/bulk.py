"""Bulk writes to Elasticsearch with per-item outcomes.

Every action carries a deterministic ``_id`` and an external version, so writing twice is
harmless and a stale write loses (``409 version_conflict`` means a newer version is
already there: success for us). Items rejected with 429/5xx are retried with backoff
inside the bulk helper; what still fails is classified:

- ``retry``: transient (overload, unavailable shards, connection trouble): try later;
- ``poison``: the document itself is rejected (mapping, bad value): never retry, dead-letter.

Writes name each concrete index by its write alias and require an alias
(``search.indices.write_alias``): a write to an index dropped since its batch chose it is
refused (``index_not_found``, retried with the targets read afresh) and never creates the
index again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import elasticsearch
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_streaming_bulk

from myaiserv.search.indices import write_alias

OK, RETRY, POISON = "ok", "retry", "poison"
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


# A bulk action's operation: write the entry (at its version) or delete it.
BulkOp = Literal["index", "delete"]


@dataclass
class Action:
    group: Any  # who this action belongs to (an entity); outcomes are reported per group
    op: BulkOp
    index: str  # the concrete index, written through its write alias
    id: str
    version: int
    source: dict[str, Any] | None = None

    def as_bulk(self) -> dict[str, Any]:
        action: dict[str, Any] = {
            "_op_type": self.op,
            "_index": write_alias(self.index),
            "_id": self.id,
            "version": self.version,
            "version_type": "external",
        }
        if self.op == "index":
            action["_source"] = self.source
        return action


@dataclass
class GroupOutcome:
    status: str = OK
    reason: str | None = None
    error: str | None = None
    items: int = 0
    failures: list[str] = field(default_factory=list)

    def worsen(self, status: str, reason: str, error: str) -> None:
        rank = {OK: 0, RETRY: 1, POISON: 2}
        if rank[status] > rank[self.status]:
            self.status, self.reason, self.error = status, reason, error[:2000]
        self.failures.append(reason)


def classify(op: str, item: dict[str, Any]) -> tuple[str, str, str]:
    """(outcome, reason, error text) for one bulk response item."""
    status = int(item.get("status", 0))
    error = item.get("error") or {}
    etype = error.get("type", "") if isinstance(error, dict) else str(error)
    reason = error.get("reason", "") if isinstance(error, dict) else str(error)
    if 200 <= status < 300:
        return OK, "ok", ""
    if status == 409 and etype == "version_conflict_engine_exception":
        return OK, "stale", ""  # a newer version is already indexed
    if status == 404 and op == "delete":
        return OK, "absent", ""
    if status in (401, 403):  # our credentials or role, not the document: the operator's fix
        return RETRY, "refused_credentials", reason
    if status in RETRYABLE_STATUS or etype in {
        "es_rejected_execution_exception",
        "unavailable_shards_exception",
        "cluster_block_exception",
        "circuit_breaking_exception",
    }:
        return RETRY, etype or f"http_{status}", reason or etype
    if etype == "index_not_found_exception":
        return RETRY, etype, reason
    return POISON, etype or f"http_{status}", reason or str(item)


async def write(
    es: AsyncElasticsearch,
    actions: Iterable[Action],
    *,
    chunk_size: int = 500,
    max_retries: int = 3,
    initial_backoff: float = 0.5,
) -> dict[Any, GroupOutcome]:
    """Write every action; returns the worst outcome of each group. A connection failure
    of the whole request marks every group of the failed chunk ``retry``."""
    actions = list(actions)
    outcomes: dict[Any, GroupOutcome] = {a.group: GroupOutcome() for a in actions}
    # Responses name the concrete index behind an alias, so match by (id, op); when an id
    # is written to two indices (during a reindex) both actions belong to the same group.
    by_key: dict[tuple[str, str], Action] = {(a.id, a.op): a for a in actions}

    def bulk_actions() -> Iterable[dict[str, Any]]:
        for a in actions:
            yield a.as_bulk()

    try:
        async for ok, result in async_streaming_bulk(
            es,
            bulk_actions(),
            chunk_size=chunk_size,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
            max_backoff=10,
            retry_on_status=(429, 503),
            raise_on_error=False,
            raise_on_exception=False,
            yield_ok=True,
            require_alias=True,
        ):
            ((op, item),) = result.items()
            action = by_key.get((item.get("_id"), op))
            if action is None:
                continue
            outcome = outcomes[action.group]
            outcome.items += 1
            if ok:
                continue
            status, reason, error = classify(op, item)
            if status != OK:
                outcome.worsen(status, reason, error)
    except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
        for outcome in outcomes.values():
            if outcome.status == OK:
                outcome.worsen(RETRY, "unavailable", str(exc))
    except elasticsearch.TransportError as exc:
        for outcome in outcomes.values():
            if outcome.status == OK:
                outcome.worsen(RETRY, "transport_error", str(exc))
    return outcomes
