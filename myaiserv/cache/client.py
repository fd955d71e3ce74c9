"""The Redis client, created per process from settings: every Redis connection of the API,
the indexers and the CLI jobs is made here.

Redis holds caches and counters, never the only copy of anything, so every call is cheap
to lose: each command (pipelines too) has one deadline, retries included, and goes
through Redis's circuit breaker. A hung Redis costs a request one short wait per command
until the circuit opens, then nothing: callers get a ``RedisError`` at once and go on
without cache (rate limits fail open or shut, as ``rate_limits.fail_open`` says).

With a ``redis+sentinel://`` URL (see ``myaiserv.cache.url``) the client asks the Sentinels
for the primary before each new connection, and drops its connections when the primary
moves (a refused or reset connection, or a READONLY answer from a demoted one): a failover
is followed without a restart. While it is under way commands fail with ``RedisError``
(``MasterNotFoundError`` among them), which callers treat as Redis being down.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from myaiserv.cache.url import is_sentinel_url, parse_sentinel_url
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


def _guarded(guard: _Guard | None) -> AbstractAsyncContextManager[None]:
    return guard.call() if guard is not None else nullcontext()


class GuardedPipeline(Pipeline):
    guard: _Guard | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        async with _guarded(self.guard):
            return await super().execute(raise_on_error)


class GuardedRedis(Redis):
    """A ``Redis`` whose commands and pipelines are bounded (see the module's docstring)
    once its ``guard`` is set (``create_redis_client``; benchmarks' clients go without)."""

    guard: _Guard | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with _guarded(self.guard):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.guard = self.guard
        return pipe


class SentinelMaster(GuardedRedis):
    """The primary's client; closing it closes its Sentinel clients too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


def create_redis_client(settings: Settings, breaker: CircuitBreaker | None = None) -> Redis:
    """``breaker``: Redis's circuit breaker (the process's; a fresh one when not given)."""
    cfg = settings.redis
    password = cfg.password
    redis = redis_for_url(
        settings.redis_url,
        # Credentials in the URL are used as they are (settings refuse both at once).
        username=cfg.username,
        password=password.get_secret_value() if password is not None else None,
        socket_timeout=cfg.socket_timeout_s,
        socket_connect_timeout=cfg.connect_timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )
    redis.guard = _Guard(
        breaker or CircuitBreaker(cfg.breaker_failures, cfg.breaker_reset_s),
        budget_s=cfg.socket_timeout_s + cfg.connect_timeout_s,
    )
    return redis


def redis_for_url(url: str, **options: Any) -> GuardedRedis:
    """A client for ``REDIS_URL`` in either form (its guard still to be set);
    ``options`` are redis-py's connection keywords (the Sentinels get its socket ones too)."""
    if not is_sentinel_url(url):
        client = GuardedRedis.from_url(url, **options)
        assert isinstance(client, GuardedRedis)
        return client
    target = parse_sentinel_url(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={k: v for k, v in options.items() if k.startswith("socket_")},
    )
    # As with redis:// URLs (redis-py's from_url), credentials in the URL win.
    in_url = {"username": target.username, "password": target.password}
    options.update({key: value for key, value in in_url.items() if value is not None})
    master: SentinelMaster = sentinel.master_for(
        target.master_name, redis_class=SentinelMaster, db=target.db, **options
    )
    return master


def as_bytes(value: bytes | str | None) -> bytes | None:
    """A value as our client returns it: bytes (``decode_responses=False``), which the
    client's types cannot say."""
    return value.encode() if isinstance(value, str) else value
