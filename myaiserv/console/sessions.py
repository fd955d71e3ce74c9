"""Console sessions, server-side in Redis (every instance sees the same ones).

The browser holds only an opaque id (32 random bytes) in an HTTP-only cookie; Redis holds
``{ns}:session:<sha256(id)>`` (so a copy of Redis holds no usable cookie) with the user,
the tenant and the login time. The key's TTL is the idle timeout, renewed on use; the
login time bounds the session absolutely. ``{ns}:user-sessions:<user id>`` lists a
user's sessions so that disabling them, or logging out everywhere, ends them all at once
on every instance.

The user's role and whether it is disabled are not stored here: they are read from
PostgreSQL on every request, so a change there takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from myaiserv.config import ConsoleSettings
from myaiserv.errors import DependencyUnavailableError

COOKIE = "myaiserv_session"


@dataclass(frozen=True)
class SessionData:
    user_id: UUID
    tenant_id: UUID
    created_at: float  # epoch seconds of the login


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, redis: Redis, namespace: str, settings: ConsoleSettings) -> None:
        self.redis = redis
        self.namespace = namespace
        self.settings = settings

    def _key(self, digest: str) -> str:
        return f"{self.namespace}:session:{digest}"

    def _user_key(self, user_id: UUID) -> str:
        return f"{self.namespace}:user-sessions:{user_id}"

    async def create(self, user_id: UUID, tenant_id: UUID) -> str:
        """A new session (a login): its id, for the cookie."""
        session_id = secrets.token_urlsafe(32)
        digest = _digest(session_id)
        absolute = self.settings.session_absolute_s
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    self._key(digest),
                    mapping={
                        "user": str(user_id),
                        "tenant": str(tenant_id),
                        "created": f"{time.time():.3f}",
                    },
                )
                pipe.expire(self._key(digest), self.settings.session_idle_s)
                pipe.sadd(self._user_key(user_id), digest)
                pipe.expire(self._user_key(user_id), absolute)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis", "sessions cannot be stored") from exc
        return session_id

    async def get(self, session_id: str) -> SessionData | None:
        """The live session with this id (its idle timeout renewed), or None."""
        key = self._key(_digest(session_id))
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(key)
                pipe.expire(key, self.settings.session_idle_s, xx=True)
                fields, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis", "sessions cannot be read") from exc
        if not fields:
            return None
        values = {_text(k): _text(v) for k, v in fields.items()}
        data = SessionData(
            user_id=UUID(values["user"]),
            tenant_id=UUID(values["tenant"]),
            created_at=float(values["created"]),
        )
        if time.time() - data.created_at > self.settings.session_absolute_s:
            await self.delete(session_id, data.user_id)
            return None
        return data

    async def delete(self, session_id: str, user_id: UUID) -> None:
        digest = _digest(session_id)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(digest))
                pipe.srem(self._user_key(user_id), digest)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis", "sessions cannot be ended") from exc

    async def delete_all(self, user_id: UUID) -> int:
        """End every session of a user; how many there were."""
        user_key = self._user_key(user_id)
        try:
            digests = await self.redis.smembers(user_key)
            keys = [self._key(_text(d)) for d in digests]
            async with self.redis.pipeline(transaction=True) as pipe:
                if keys:
                    pipe.delete(*keys)
                pipe.delete(user_key)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError("redis", "sessions cannot be ended") from exc
        return int(results[0]) if keys else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
