"""The one factory of Redis clients: a Sentinel URL gives a client of the primary that
asks the Sentinels for it (no connection is made here)."""

from __future__ import annotations

from redis.asyncio.sentinel import SentinelConnectionPool

from myaiserv.cache.client import GuardedRedis, SentinelMaster, create_redis_client
from myaiserv.config import Settings


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, redis_url=url, redis={"socket_timeout_s": 0.5})


async def test_a_sentinel_url_gives_the_primary_through_the_sentinels() -> None:
    client = create_redis_client(
        _settings("redis+sentinel://app:s3cret-pass@s1:26390,s2:26391/mymaster/2")
    )
    try:
        assert isinstance(client, SentinelMaster) and client.guard is not None
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.is_master and pool.service_name == "mymaster"
        kwargs = pool.connection_kwargs
        assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (2, "app", "s3cret-pass")
        assert kwargs["socket_timeout"] == 0.5
        sentinels = pool.sentinel_manager.sentinels
        addresses = [
            (
                s.connection_pool.connection_kwargs["host"],
                s.connection_pool.connection_kwargs["port"],
            )
            for s in sentinels
        ]
        assert addresses == [("s1", 26390), ("s2", 26391)]
        # The Sentinels get the timeouts, not the servers' credentials.
        for sentinel in sentinels:
            assert sentinel.connection_pool.connection_kwargs.get("password") is None
            assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == 0.5
        assert "s3cret-pass" not in repr(client) + repr(pool) + repr(pool.sentinel_manager)
    finally:
        await client.aclose()


async def test_a_plain_url_gives_one_server() -> None:
    client = create_redis_client(_settings("redis://cache:6380/3"))
    try:
        assert type(client) is GuardedRedis and client.guard is not None
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache", 6380, 3)
    finally:
        await client.aclose()
