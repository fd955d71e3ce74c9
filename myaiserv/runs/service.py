"""Runs: one row per inference call, logged by clients that call LLMs themselves or
recorded by our RAG code (``record``). Every change writes its outbox row in the same
transaction; the caller's unit of work commits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.models import IndexStatus, Run
from myaiserv.kit.validation import InvalidInputError, check_metadata, reject_nul
from myaiserv.runs.repository import RunRepository
from myaiserv.tracing.context import current_trace_id

STATUSES = ("ok", "error", "timeout", "cancelled")
# What the columns hold: a value past these would be a database error, not a 422.
MAX_INT = 2**31 - 1
MAX_MS = 999_999_999  # numeric(12, 3)
COST_LIMIT = Decimal(10**6)  # numeric(14, 8)
COST_QUANTUM = Decimal("1e-8")
NAME_CHARS = {"provider": 100, "model": 200, "prompt_name": 200}
MAX_TEXT_CHARS = 5_000_000
MAX_CHUNK_IDS = 10_000
MAX_CHUNK_ID_CHARS = 1000
INT_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "prompt_version")
MS_FIELDS = ("latency_ms", "time_to_first_token_ms")
TEXT_FIELDS = ("input", "output", "error")
TIME_FIELDS = ("started_at", "finished_at")
CHUNK_FIELDS = ("retrieved_chunk_ids", "cited_chunk_ids")


def _int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise InvalidInputError(name, f"must be an integer from 0 to {MAX_INT}")
    return value


def _ms(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_MS
    ):
        raise InvalidInputError(name, f"must be a number of milliseconds from 0 to {MAX_MS}")
    return float(value)


def _cost(value: Any) -> Decimal | None:
    if value is None:
        return None
    problem = "must be a number of US dollars, at least 0 and below 1000000"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidInputError("cost_usd", problem)
    cost = value if isinstance(value, Decimal) else Decimal(repr(value))
    if not cost.is_finite() or not 0 <= cost < COST_LIMIT:
        raise InvalidInputError("cost_usd", problem)
    cost = cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)
    if cost >= COST_LIMIT:
        raise InvalidInputError("cost_usd", problem)
    return cost


def _text(name: str, value: Any, *, min_chars: int, max_chars: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not min_chars <= len(value) <= max_chars:
        raise InvalidInputError(name, f"must be {min_chars} to {max_chars} characters")
    reject_nul(value, name)
    return value


def _time(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(name, "must be a date-time with a timezone offset")
    return value


def _chunk_ids(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > MAX_CHUNK_IDS:
        raise InvalidInputError(name, f"must be a list of at most {MAX_CHUNK_IDS} chunk ids")
    for i, item in enumerate(value):
        _text(f"{name}[{i}]", item, min_chars=1, max_chars=MAX_CHUNK_ID_CHARS)
    return list(value)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Check each given field (named as in the API) and return it as column values.
    A required field given as None is refused here; omitted ones are not looked at."""
    cols: dict[str, Any] = {}
    for name in ("provider", "model"):
        if name in values:
            if values[name] is None:
                raise InvalidInputError(name, "is required")
            cols[name] = _text(name, values[name], min_chars=1, max_chars=NAME_CHARS[name])
    if "prompt_name" in values:
        cols["prompt_name"] = _text(
            "prompt_name", values["prompt_name"], min_chars=1, max_chars=NAME_CHARS["prompt_name"]
        )
    for name in TEXT_FIELDS:
        if name in values:
            if name == "input" and values[name] is None:
                raise InvalidInputError(name, "is required")
            cols[name] = _text(name, values[name], min_chars=0, max_chars=MAX_TEXT_CHARS)
    if "status" in values:
        if values["status"] not in STATUSES:
            raise InvalidInputError("status", f"must be one of {', '.join(STATUSES)}")
        cols["status"] = values["status"]
    for name in INT_FIELDS:
        if name in values:
            cols[name] = _int(name, values[name])
    for name in MS_FIELDS:
        if name in values:
            cols[name] = _ms(name, values[name])
    if "cost_usd" in values:
        cols["cost_usd"] = _cost(values["cost_usd"])
    for name in CHUNK_FIELDS:
        if name in values:
            cols[name] = _chunk_ids(name, values[name])
    for name in TIME_FIELDS:
        if name in values:
            cols[name] = _time(name, values[name])
    if "metadata" in values:
        metadata = {} if values["metadata"] is None else values["metadata"]
        cols["metadata_"] = check_metadata(metadata)
    return cols


def _check_order(started_at: datetime | None, finished_at: datetime | None) -> None:
    if started_at is not None and finished_at is not None and finished_at < started_at:
        raise InvalidInputError("finished_at", "is before started_at")


def _total(prompt_tokens: int | None, completion_tokens: int | None) -> int | None:
    if prompt_tokens is None or completion_tokens is None:
        return None
    return _int("total_tokens", prompt_tokens + completion_tokens)


class RunService:
    def __init__(self, session: AsyncSession, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.repo = RunRepository(session, tenant_id)

    async def record(
        self,
        *,
        provider: str,
        model: str,
        input: str,
        status: str,
        output: str | None = None,
        error: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        total_tokens: int | None = None,
        latency_ms: float | None = None,
        time_to_first_token_ms: float | None = None,
        cost_usd: float | Decimal | None = None,
        prompt_name: str | None = None,
        prompt_version: int | None = None,
        prompt_version_id: UUID | None = None,
        conversation_id: UUID | None = None,
        retrieved_chunk_ids: Sequence[str] | None = None,
        cited_chunk_ids: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> Run:
        """Store one inference call. ``total_tokens`` defaults to the sum of both parts
        when they are given; a ``prompt_version_id`` fills in ``prompt_name`` and
        ``prompt_version`` when they are omitted. Invalid values raise
        ``InvalidInputError`` naming the field."""
        values = {
            "provider": provider,
            "model": model,
            "input": input,
            "status": status,
            "output": output,
            "error": error,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
            "latency_ms": latency_ms,
            "time_to_first_token_ms": time_to_first_token_ms,
            "cost_usd": cost_usd,
            "prompt_name": prompt_name,
            "prompt_version": prompt_version,
            "retrieved_chunk_ids": None if retrieved_chunk_ids is None else [*retrieved_chunk_ids],
            "cited_chunk_ids": None if cited_chunk_ids is None else [*cited_chunk_ids],
            "metadata": metadata,
            "started_at": started_at,
            "finished_at": finished_at,
        }
        cols = _columns(values)
        _check_order(cols["started_at"], cols["finished_at"])
        if cols["total_tokens"] is None:
            cols["total_tokens"] = _total(cols["prompt_tokens"], cols["completion_tokens"])
        if conversation_id is not None:
            if not await self.repo.conversation_exists(conversation_id):
                raise InvalidInputError(
                    "conversation_id", f"conversation {conversation_id} not found"
                )
            cols["conversation_id"] = conversation_id
        if prompt_version_id is not None:
            found = await self.repo.prompt_version(prompt_version_id)
            if found is None:
                raise InvalidInputError(
                    "prompt_version_id", f"prompt version {prompt_version_id} not found"
                )
            cols["prompt_version_id"] = prompt_version_id
            if cols["prompt_name"] is None:
                cols["prompt_name"] = found[0]
            if cols["prompt_version"] is None:
                cols["prompt_version"] = found[1]
        # The trace this call is recorded in (its POST's, or the chat call's), if any.
        cols["trace_id"] = current_trace_id()
        run = await self.repo.add(cols)
        await self.repo.record([self.repo.upserted(run.id, run.version)])
        return run

    async def get(self, run_id: UUID) -> Run:
        return await self.repo.get(run_id)

    async def list(
        self,
        *,
        cursor: str | None,
        limit: int,
        provider: str | None = None,
        model: str | None = None,
        status: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> tuple[list[Run], str | None]:
        """Newest first, optionally only those of one provider, model, status and/or
        index status."""
        reject_nul(provider, "provider")
        reject_nul(model, "model")
        if status is not None and status not in STATUSES:
            raise InvalidInputError("status", f"must be one of {', '.join(STATUSES)}")
        return await self.repo.list(
            cursor=cursor,
            limit=limit,
            provider=provider,
            model=model,
            status=status,
            index_status=index_status,
        )

    async def index_counts(self) -> dict[IndexStatus, int]:
        """How many of the tenant's runs are pending, indexed and failed."""
        return await self.repo.index_counts()

    async def update(self, run_id: UUID, changes: dict[str, Any]) -> Run:
        """Change some fields (a run that finished, late token counts...); the version goes
        up by one. Changing a token part without ``total_tokens`` recomputes the total
        when both parts are known."""
        run = await self.repo.get(run_id, for_update=True)
        cols = _columns(changes)
        _check_order(run.started_at, cols.get("finished_at", run.finished_at))
        if "total_tokens" not in cols and {"prompt_tokens", "completion_tokens"} & cols.keys():
            total = _total(
                cols.get("prompt_tokens", run.prompt_tokens),
                cols.get("completion_tokens", run.completion_tokens),
            )
            if total is not None:
                cols["total_tokens"] = total
        for name, value in cols.items():
            setattr(run, name, value)
        await self.repo.touch(run)
        return run

    async def delete(self, run_id: UUID) -> None:
        await self.repo.remove(run_id)
