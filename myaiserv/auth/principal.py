"""Who is calling: the tenant and scopes of the credential presented with the request, an
API key or a console session. Everything downstream sees only this, so a page of the
console is isolated and authorised exactly as the API call behind it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

# admin implies write implies read.
_ORDER = {"read": 0, "write": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    tenant_id: UUID
    scopes: frozenset[str]
    key_id: UUID | None = None  # an API key's call
    key_prefix: str | None = None
    user_id: UUID | None = None  # a console user's session
    email: str | None = None

    def allows(self, scope: str) -> bool:
        return any(_ORDER.get(s, -1) >= _ORDER[scope] for s in self.scopes)

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        if self.user_id is not None:
            return f"user:{self.email}"
        return f"key:{self.key_prefix}"

    @property
    def subject(self) -> str:
        """The caller's own rate-limit counter: one per key, one per user."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return f"key:{self.key_id}"
