"""Who is calling: the tenant and scopes of the API key presented with the request."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class Principal:
    tenant_id: UUID
    key_id: UUID
    key_prefix: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        # admin implies write implies read.
        order = {"read": 0, "write": 1, "admin": 2}
        return any(order.get(s, -1) >= order[scope] for s in self.scopes)
