"""The Redis client, created per process from settings.

Redis holds caches and counters, never the only copy of anything, so every call is cheap
to lose: each command (pipelines too) has one deadline, retries included, and goes
through Redis's circuit breaker. A hung Redis costs a request one short wait per command
until the circuit opens, then nothing: callers get a ``RedisError`` at once and go on
without cache (rate limits fail open or shut, as ``rate_limits.fail_open`` says).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from myaiserv.config import Settings
from myaiserv.kit.breaker import CircuitBreaker, bounded


def _unavailable(exc: BaseException) -> bool:
    """Redis did not answer (an error reply, e.g. a wrong type, is an answer)."""
    return isinstance(exc, OSError | RedisError) and not isinstance(exc, ResponseError)


def _refused(retry_after_s: float) -> RedisConnectionError:
    return RedisConnectionError(f"redis circuit open; retrying in {retry_after_s:.1f}s")


class _Guard:
    """What every command goes through: Redis's breaker and one deadline."""

    def __init__(self, breaker: CircuitBreaker, budget_s: float) -> None:
        self.breaker = breaker
        self.budget_s = budget_s

    def call(self) -> AbstractAsyncContextManager[None]:
        """The deadline raises ``TimeoutError``, an ``OSError``: callers already catch
        ``(RedisError, OSError)`` as "Redis unavailable"."""
        deadline = asyncio.get_running_loop().time() + self.budget_s
        return bounded(self.breaker, deadline=deadline, is_failure=_unavailable, refuse=_refused)


class GuardedPipeline(Pipeline):
    guard: _Guard

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        async with self.guard.call():
            return await super().execute(raise_on_error)


class GuardedRedis(Redis):
    """A ``Redis`` whose commands and pipelines are bounded (see the module's docstring)."""

    guard: _Guard

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with self.guard.call():
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.guard = self.guard
        return pipe


def create_redis_client(settings: Settings, breaker: CircuitBreaker | None = None) -> Redis:
    """``breaker``: Redis's circuit breaker (the process's; a fresh one when not given)."""
    redis = GuardedRedis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis.socket_timeout_s,
        socket_connect_timeout=settings.redis.connect_timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )
    cfg = settings.redis
    assert isinstance(redis, GuardedRedis)
    redis.guard = _Guard(
        breaker or CircuitBreaker(cfg.breaker_failures, cfg.breaker_reset_s),
        budget_s=cfg.socket_timeout_s + cfg.connect_timeout_s,
    )
    return redis


def as_bytes(value: bytes | str | None) -> bytes | None:
    """A value as our client returns it: bytes (``decode_responses=False``), which the
    client's types cannot say."""
    return value.encode() if isinstance(value, str) else value
