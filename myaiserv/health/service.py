"""Readiness: can this instance serve traffic? Each dependency is checked concurrently,
each with its own short timeout, so one hung dependency cannot hide the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from myaiserv import metrics
from myaiserv.health.breakers import DependencyBreakers
from myaiserv.kit.breaker import BreakerState


@dataclass
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    detail: str
    breaker: BreakerState

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "down",
            "latency_ms": round(self.latency_ms, 1),
            "detail": self.detail,
            "breaker": self.breaker.value,
        }


class ReadinessService:
    def __init__(
        self,
        *,
        es: AsyncElasticsearch,
        engine: AsyncEngine,
        redis: Redis,
        breakers: DependencyBreakers,
        timeout_s: float,
    ) -> None:
        self.es = es
        self.engine = engine
        self.redis = redis
        self.breakers = breakers
        self.timeout_s = timeout_s

    async def _elasticsearch(self) -> str:
        health = await self.es.options(
            request_timeout=self.timeout_s, max_retries=0
        ).cluster.health()
        status = health["status"]
        metrics.ES_CLUSTER_STATUS.set(metrics.ES_STATUS_CODES.get(status, 2))
        if status == "red":
            raise RuntimeError(f"cluster status red ({health['number_of_nodes']} nodes)")
        return f"cluster {status}, {health['number_of_nodes']} node(s)"

    async def _postgres(self) -> str:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return "SELECT 1 ok"

    async def _redis(self) -> str:
        await self.redis.ping()
        return "PING ok"

    async def _run(self, name: str, check: Callable[[], Awaitable[str]]) -> CheckResult:
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(check(), timeout=self.timeout_s)
            ok = True
        except TimeoutError:
            detail, ok = f"no answer within {self.timeout_s:g}s", False
        except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
            detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
        breaker = self.breakers.states()[name]
        return CheckResult(name, ok, (time.perf_counter() - started) * 1000, detail, breaker)

    async def check(self) -> list[CheckResult]:
        results = list(
            await asyncio.gather(
                self._run("elasticsearch", self._elasticsearch),
                self._run("postgres", self._postgres),
                self._run("redis", self._redis),
            )
        )
        for result in results:
            metrics.READY.labels(result.name).set(1 if result.ok else 0)
        return results
