"""The process's circuit breakers for its datastores (Redis, Elasticsearch, PostgreSQL),
built from settings, their states exported as a gauge and shown by ``/ready``.

A hung datastore (connections accepted, nothing answered) would otherwise hold every
request that touches it for a full timeout, and requests pile up; with its circuit open
they skip it (Redis, a cache) or answer 503 at once (Elasticsearch, PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass

from myaiserv import metrics
from myaiserv.config import Settings
from myaiserv.kit.breaker import BreakerState, CircuitBreaker


def _breaker(dependency: str, failures: int, reset_s: float) -> CircuitBreaker:
    gauge = metrics.DEPENDENCY_BREAKER.labels(dependency)
    gauge.set(BreakerState.CLOSED.code)
    return CircuitBreaker(failures, reset_s, on_change=lambda state: gauge.set(state.code))


@dataclass(frozen=True)
class DependencyBreakers:
    redis: CircuitBreaker
    elasticsearch: CircuitBreaker
    postgres: CircuitBreaker

    @classmethod
    def from_settings(cls, settings: Settings) -> DependencyBreakers:
        return cls(
            redis=_breaker(
                "redis", settings.redis.breaker_failures, settings.redis.breaker_reset_s
            ),
            elasticsearch=_breaker(
                "elasticsearch", settings.es.breaker_failures, settings.es.breaker_reset_s
            ),
            postgres=_breaker(
                "postgres", settings.db.breaker_failures, settings.db.breaker_reset_s
            ),
        )

    def states(self) -> dict[str, BreakerState]:
        """Each breaker's state now, the gauge brought up to date (an open circuit turns
        half-open by the clock, between calls)."""
        found = {
            "redis": self.redis.state,
            "elasticsearch": self.elasticsearch.state,
            "postgres": self.postgres.state,
        }
        for dependency, state in found.items():
            metrics.DEPENDENCY_BREAKER.labels(dependency).set(state.code)
        return found
