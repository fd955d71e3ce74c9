"""The circuit breaker's state machine, on a clock the tests move, and the bounded call
through it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from myaiserv.kit.breaker import BreakerState, CircuitBreaker, bounded


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def opened(clock: Clock, failures: int = 3, reset_s: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, reset_s, clock=clock)
    for _ in range(failures):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_closed_until_enough_consecutive_failures(clock: Clock) -> None:
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()  # resets the count: failures must be consecutive
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.retry_after_s == 0.0
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_open_rejects_until_the_cool_down_passes(clock: Clock) -> None:
    breaker = opened(clock)
    assert not breaker.allow()
    assert breaker.retry_after_s == 10.0
    clock.now += 4
    assert not breaker.allow()
    assert breaker.retry_after_s == 6.0
    clock.now += 6
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_after_s == 0.0


def test_half_open_lets_one_trial_through_and_its_success_closes(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += 10
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one trial at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_a_failed_trial_opens_the_circuit_again(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_s == 10.0
    clock.now += 10
    assert breaker.allow()


def test_a_trial_that_never_reports_stops_blocking_after_the_cool_down(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += 10
    assert breaker.allow()  # this trial is cancelled and never records an outcome
    clock.now += 5
    assert not breaker.allow()
    assert breaker.retry_after_s == 5.0
    clock.now += 5
    assert breaker.allow()


def test_late_failures_do_not_extend_the_cool_down(clock: Clock) -> None:
    breaker = opened(clock)
    clock.now += 9
    breaker.record_failure()  # a call that started before the circuit opened
    clock.now += 1
    assert breaker.allow()


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 1.0), (1, 0.0)])
def test_rejects_nonsense_settings(failures: int, reset_s: float) -> None:
    with pytest.raises(ValueError, match="failures must be"):
        CircuitBreaker(failures, reset_s)


def test_each_change_of_state_is_told_once(clock: Clock) -> None:
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(2, 10.0, clock=clock, on_change=seen.append)
    breaker.record_failure()
    breaker.record_success()
    assert seen == []  # closed all along: nothing to tell
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_failure()  # already open: no news
    clock.now += 10.0
    assert breaker.allow()
    breaker.record_success()
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_state_codes_are_ordered_by_severity() -> None:
    codes = [s.code for s in (BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.OPEN)]
    assert codes == [0, 1, 2]


class RefusedError(Exception):
    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s


def call(breaker: CircuitBreaker, deadline: float | None = None) -> Any:
    return bounded(
        breaker,
        deadline=deadline,
        is_failure=lambda exc: isinstance(exc, ConnectionError),
        refuse=RefusedError,
    )


async def test_a_bounded_call_past_its_deadline_is_a_failure(clock: Clock) -> None:
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    with pytest.raises(TimeoutError):
        async with call(breaker, asyncio.get_running_loop().time() + 0.01):
            await asyncio.sleep(10)
    assert breaker.state is BreakerState.OPEN


async def test_an_open_circuit_refuses_at_once_saying_when_to_retry(clock: Clock) -> None:
    breaker = opened(clock, failures=1)
    clock.now += 4.0
    with pytest.raises(RefusedError) as refused:
        async with call(breaker):
            pytest.fail("the call went through an open circuit")
    assert refused.value.retry_after_s == 6.0


async def test_an_error_answer_is_a_success_and_no_answer_a_failure(clock: Clock) -> None:
    breaker = CircuitBreaker(2, 10.0, clock=clock)
    with pytest.raises(ConnectionError):
        async with call(breaker):
            raise ConnectionError
    with pytest.raises(KeyError):  # the dependency answered: "no such thing"
        async with call(breaker):
            raise KeyError("missing")
    with pytest.raises(ConnectionError):
        async with call(breaker):
            raise ConnectionError
    assert breaker.state is BreakerState.CLOSED  # not two failures in a row


async def test_a_cancelled_call_is_not_recorded(clock: Clock) -> None:
    breaker = CircuitBreaker(1, 10.0, clock=clock)
    started = asyncio.Event()

    async def waits() -> None:
        async with call(breaker):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.CLOSED
