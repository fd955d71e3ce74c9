"""The sliding-window arithmetic: how much of a limit a counter has used at a moment, and
when the next request fits."""

from __future__ import annotations

import pytest

from myaiserv.auth.ratelimit import Sliding


def test_the_previous_minute_weighs_by_the_part_still_inside_the_last_60_s() -> None:
    assert Sliding(10, current=2, previous=8, gone=0.25).used == pytest.approx(8)
    assert Sliding(10, current=2, previous=8, gone=0.0).used == pytest.approx(10)
    assert Sliding(10, current=2, previous=8, gone=1.0).used == pytest.approx(2)


def test_a_limit_spent_at_the_end_of_a_minute_still_holds_after_its_turn() -> None:
    # Three requests in the last second of a minute, the limit 3: a fixed window would
    # allow three more at once; here the next fits once a third of the old ones has gone.
    window = Sliding(3, current=0, previous=3, gone=0.01)
    verdict = window.verdict(False)
    assert verdict.remaining == 0
    assert window.wait_s() == pytest.approx((1 / 3 - 0.01) * 60)
    assert verdict.reset_s == 20  # rounded up to whole seconds


def test_a_minute_spent_in_full_waits_into_the_next() -> None:
    # This minute's 4 of 4 used: in the next minute they weigh 4 * (1 - g), and one more
    # fits once that is at most 3, a quarter into it.
    window = Sliding(4, current=4, previous=0, gone=0.5)
    assert window.wait_s() == pytest.approx(30 + 15)
    assert window.verdict(False).reset_s == 45
    assert Sliding(1, current=1, previous=0, gone=0.0).wait_s() == pytest.approx(120)


def test_remaining_counts_whole_requests_and_reset_is_when_the_counts_stop_weighing() -> None:
    fresh = Sliding(3, current=1, previous=0, gone=0.5).verdict(True)
    assert (fresh.remaining, fresh.reset_s, fresh.allowed) == (2, 90, True)
    # 1.5 used of 3: one more fits now, and a second half a request later.
    assert Sliding(3, current=1, previous=1, gone=0.5).verdict(True).remaining == 1
    assert Sliding(3, current=0, previous=0, gone=0.5).verdict(True).reset_s == 30
    assert Sliding(3, current=1, previous=1, gone=0.5).wait_s() == 0.0
