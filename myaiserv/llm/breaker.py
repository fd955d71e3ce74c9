"""A circuit breaker for one upstream provider: after ``failures`` consecutive failed calls
the circuit opens and calls fail fast (the RAG service fails over at once instead of
waiting on timeouts); after ``reset_s`` one trial call is let through (half-open): its
success closes the circuit, its failure opens it again for another ``reset_s``.

The state is per process on purpose: it is this process's view of the provider's health,
good enough to stop hammering a provider that is down. Sharing it (e.g. in Redis) would add
a dependency on the hot path for little gain; every process learns within ``failures``
calls. Not thread-safe; meant for one event loop, where nothing here awaits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self, failures: int, reset_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """The state as a caller would find it now (an open circuit whose cool-down has
        passed reads half-open, though no trial has started yet)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def retry_after_s(self) -> float:
        """Seconds until a call may be let through again (0 when one may be now)."""
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.reset_s - self._clock())
        if self._state is BreakerState.HALF_OPEN and self._trial_at is not None:
            return max(0.0, self._trial_at + self.reset_s - self._clock())
        return 0.0

    def allow(self) -> bool:
        """Whether a call may go upstream now. In half-open only one trial is let through;
        a trial that never reports back (cancelled) stops blocking others after
        ``reset_s``, so the breaker cannot stay stuck."""
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return False
            self._state = BreakerState.HALF_OPEN
            self._trial_at = now
            return True
        if self._trial_at is not None and now - self._trial_at < self.reset_s:
            return False
        self._trial_at = now
        return True

    def record_success(self) -> None:
        """The provider answered: whatever the state, the circuit closes."""
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._trial_at = None

    def record_failure(self) -> None:
        if self._state is BreakerState.OPEN:
            return  # a call that started before the circuit opened; keep the cool-down
        self._consecutive += 1
        if self._state is BreakerState.HALF_OPEN or self._consecutive >= self.failures:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._trial_at = None

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_s
