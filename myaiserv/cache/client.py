"""The Redis client, created per process from settings."""

from __future__ import annotations

from redis.asyncio import Redis

from myaiserv.config import Settings


def create_redis_client(settings: Settings) -> Redis:
    password = settings.redis.password
    return Redis.from_url(
        settings.redis_url,
        # Credentials in the URL are used as they are (settings refuse both at once).
        username=settings.redis.username,
        password=password.get_secret_value() if password is not None else None,
        socket_timeout=settings.redis.socket_timeout_s,
        socket_connect_timeout=settings.redis.connect_timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )


def as_bytes(value: bytes | str | None) -> bytes | None:
    """A value as our client returns it: bytes (``decode_responses=False``), which the
    client's types cannot say."""
    return value.encode() if isinstance(value, str) else value
