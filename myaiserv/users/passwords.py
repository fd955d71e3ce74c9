"""Password hashes: argon2id (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, 3
passes, 4 lanes), verified in a worker thread so a login never stalls the event loop.

A hash made with older parameters is replaced at the next successful login."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id, the library's current recommendation

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; this bounds the work an attacker can ask for


@cache
def _dummy_hash() -> str:
    """Verified against when the email names no user with a password, so the time a
    refusal takes does not tell which accounts exist (made once, on first use)."""
    return _HASHER.hash("no such user: this hash only spends the time a real one would")


def check_policy(password: str) -> str | None:
    """Why ``password`` is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    return None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """``password`` against ``password_hash``; None (no usable hash) spends the same time
    and is False."""
    if password_hash is None:
        await asyncio.to_thread(_verify, _dummy_hash(), password)
        return False
    return await asyncio.to_thread(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)
