"""Encryption of stored secrets: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``)
under one or more keys. The first key encrypts; every key decrypts, which is what lets a
rotation happen without downtime:

1. ``myaiserv secrets generate-key``; put the new key first in ``MYAISERV_SECRETS__KEYS``
   (keep the old one after it) and roll the instances: they read old and new ciphertexts;
2. ``myaiserv secrets rotate`` re-encrypts every stored secret under the new key;
3. drop the old key from the setting and roll again.
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsError(Exception):
    """Secrets cannot be read or written; ``str()`` is a message for the operator and
    never contains a secret."""


def key_id(key: str) -> str:
    """A short public name of a key (which key encrypted a row), not the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def generate_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretsError(
                "no secret keys configured: set MYAISERV_SECRETS__KEYS "
                "(make one with `myaiserv secrets generate-key`)"
            )
        fernets = []
        for position, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                raise SecretsError(
                    f"secret key #{position} is not a Fernet key (32 url-safe base64 bytes)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_ids = [key_id(k) for k in keys]

    @property
    def primary_key_id(self) -> str:
        return self.key_ids[0]

    def encrypt(self, plaintext: str) -> tuple[str, str]:
        """(ciphertext, id of the key that encrypted it)."""
        return self._fernet.encrypt(plaintext.encode()).decode(), self.primary_key_id

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretsError(
                "a stored secret cannot be decrypted with any configured key "
                "(was the key that encrypted it removed from MYAISERV_SECRETS__KEYS?)"
            ) from None

    def rotate(self, ciphertext: str) -> tuple[str, str]:
        """The same secret, encrypted under the primary key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode(), self.primary_key_id
        except InvalidToken:
            raise SecretsError(
                "a stored secret cannot be decrypted with any configured key"
            ) from None
