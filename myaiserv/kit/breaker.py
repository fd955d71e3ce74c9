"""A circuit breaker for one dependency (an LLM provider, Redis, Elasticsearch,
PostgreSQL): after ``failures`` consecutive failed calls the circuit opens and calls fail
fast (the RAG service fails over, a cache is skipped, a search answers 503) instead of
each waiting out a timeout; after ``reset_s`` one trial call is let through (half-open):
its success closes the circuit, its failure opens it again for another ``reset_s``.

As pybreaker and Hystrix do, only consecutive failures count (one success resets the
count) and one trial at a time probes a half-open circuit. The state is per process on
purpose: it is this process's view of the dependency's health, good enough to stop piling
requests onto one that hangs. Sharing it (e.g. in Redis) would add a dependency on the hot
path for little gain; every process learns within ``failures`` calls. Not thread-safe;
meant for one event loop, where nothing here awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def code(self) -> int:
        """The state as a number, ordered by severity (a gauge's value): 0 closed, 1
        half-open, 2 open."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        reset_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        """``on_change``: told each new state as the breaker moves (e.g. to set a gauge)."""
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
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
            self._move(BreakerState.HALF_OPEN)
            self._trial_at = now
            return True
        if self._trial_at is not None and now - self._trial_at < self.reset_s:
            return False
        self._trial_at = now
        return True

    def record_success(self) -> None:
        """The dependency answered: whatever the state, the circuit closes."""
        self._move(BreakerState.CLOSED)
        self._consecutive = 0
        self._trial_at = None

    def record_failure(self) -> None:
        if self._state is BreakerState.OPEN:
            return  # a call that started before the circuit opened; keep the cool-down
        self._consecutive += 1
        if self._state is BreakerState.HALF_OPEN or self._consecutive >= self.failures:
            self._move(BreakerState.OPEN)
            self._opened_at = self._clock()
            self._trial_at = None

    def _move(self, state: BreakerState) -> None:
        changed = state is not self._state
        self._state = state
        if changed and self._on_change is not None:
            self._on_change(state)

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_s


@contextlib.asynccontextmanager
async def bounded(
    breaker: CircuitBreaker,
    *,
    deadline: float | None,
    is_failure: Callable[[BaseException], bool],
    refuse: Callable[[float], BaseException],
) -> AsyncIterator[None]:
    """One call to a dependency, bounded: refused at once (``refuse(retry_after_s)``) while
    its circuit is open; cancelled at ``deadline`` (the event loop's clock), which raises
    ``TimeoutError``; its ending recorded: a timeout or an exception ``is_failure`` calls a
    failure is a failure, any other ending means the dependency answered. A cancellation
    from outside (the client went away) tells nothing and is not recorded."""
    if not breaker.allow():
        raise refuse(breaker.retry_after_s)
    try:
        async with asyncio.timeout_at(deadline):
            yield
    except TimeoutError:
        breaker.record_failure()
        raise
    except Exception as exc:
        if is_failure(exc):
            breaker.record_failure()
        else:
            breaker.record_success()
        raise
    breaker.record_success()
