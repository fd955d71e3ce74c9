"""The Redis client, created per process from settings: every Redis connection of the API,
the indexers and the CLI jobs is made here.

With a ``redis+sentinel://`` URL (see ``myaiserv.cache.url``) the client asks the Sentinels
for the primary before each new connection, and drops its connections when the primary
moves (a refused or reset connection, or a READONLY answer from a demoted one): a failover
is followed without a restart. While it is under way commands fail with ``RedisError``
(``MasterNotFoundError`` among them), which callers treat as Redis being down.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from myaiserv.cache.url import is_sentinel_url, parse_sentinel_url
from myaiserv.config import Settings


def create_redis_client(settings: Settings) -> Redis:
    password = settings.redis.password
    return redis_for_url(
        settings.redis_url,
        # Credentials in the URL are used as they are (settings refuse both at once).
        username=settings.redis.username,
        password=password.get_secret_value() if password is not None else None,
        socket_timeout=settings.redis.socket_timeout_s,
        socket_connect_timeout=settings.redis.connect_timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )


class SentinelMaster(Redis):
    """The primary's client; closing it closes its Sentinel clients too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


def redis_for_url(url: str, **options: Any) -> Redis:
    """A client for ``REDIS_URL`` in either form; ``options`` are redis-py's connection
    keywords (the Sentinels get its socket ones too)."""
    if not is_sentinel_url(url):
        return Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={k: v for k, v in options.items() if k.startswith("socket_")},
    )
    # As with redis:// URLs (redis-py's from_url), credentials in the URL win.
    in_url = {"username": target.username, "password": target.password}
    options.update({key: value for key, value in in_url.items() if value is not None})
    client: Redis = sentinel.master_for(
        target.master_name, redis_class=SentinelMaster, db=target.db, **options
    )
    return client


def as_bytes(value: bytes | str | None) -> bytes | None:
    """A value as our client returns it: bytes (``decode_responses=False``), which the
    client's types cannot say."""
    return value.encode() if isinstance(value, str) else value
