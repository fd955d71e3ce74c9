"""API keys: ``mas_<prefix>_<secret>``. The prefix finds the row; only a hash is stored.

Keys are 32 random bytes, so a fast keyed hash is enough (no password stretching needed);
comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "mas"
SCOPES = ("read", "write", "admin")


@dataclass(frozen=True)
class NewKey:
    plaintext: str
    prefix: str
    key_hash: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate_key() -> NewKey:
    prefix = f"{KEY_SCHEME}_{secrets.token_hex(6)}"
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(plaintext=plaintext, prefix=prefix, key_hash=hash_key(plaintext))


def split_prefix(plaintext: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like ours."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 12 or not parts[2]:
        return None
    return f"{parts[0]}_{parts[1]}"


# Compared against when no key has the presented prefix (see the auth middleware).
DUMMY_HASH = hash_key(f"{KEY_SCHEME}_000000000000_no-such-key")


def verify(plaintext: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), key_hash)
