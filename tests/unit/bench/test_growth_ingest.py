"""A topology's checkpoint logic: a portion starts only if it ends in the stage's time."""

from __future__ import annotations

from bench.growth_ingest import fits, rate_so_far


def test_a_portion_starts_only_if_it_ends_before_the_deadline() -> None:
    assert fits(0, None, 10**9, 1, 0)
    assert fits(100, 1100, 20_000, 25.0, 100)  # 800 s of ingest + 100 s of searches
    assert not fits(100, 1100, 25_000, 25.0, 100)
    portions = [
        {"phase": "cold", "new_chunks": 2000, "searchable_s": 100},
        {"phase": "warm", "new_chunks": 9000, "searchable_s": 30},
    ]
    assert rate_so_far(portions) == 20.0  # cold portions set the pace
    assert rate_so_far([]) == 20.0
