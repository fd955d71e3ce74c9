"""The circuit breaker's state machine, on a clock the tests move."""

from __future__ import annotations

import pytest

from myaiserv.kit.breaker import BreakerState, CircuitBreaker


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
