"""The probes' bodies, as the OpenAPI document describes them."""

from __future__ import annotations

from typing import Literal

import msgspec


class Alive(msgspec.Struct, kw_only=True):
    status: Literal["ok"]


class Check(msgspec.Struct, kw_only=True):
    status: Literal["ok", "down"]
    latency_ms: float
    detail: str
    # This process's circuit for the dependency: open means requests skip it (Redis) or
    # are refused at once with 503 (Elasticsearch, PostgreSQL).
    breaker: Literal["closed", "half_open", "open"]


class Ready(msgspec.Struct, kw_only=True):
    status: Literal["ok"]
    checks: dict[str, Check]  # elasticsearch, postgres, redis


class NotReady(msgspec.Struct, kw_only=True):
    """Problem details, with ``status`` saying "unavailable" (as the probe always has)
    rather than the HTTP status, and the failing dependencies."""

    type: str
    title: str
    status: Literal["unavailable"]
    detail: str
    instance: str
    failing: list[str]
    checks: dict[str, Check]
