"""Figures over rounds: recorded as median, lowest and highest, read back and printed the
same way, and a lead no larger than the rounds' spread called a tie, either way round."""

from __future__ import annotations

import pytest

from bench.spread import Spread, over_rounds, versus


def test_rounds_are_recorded_as_the_median_with_the_lowest_and_highest() -> None:
    recorded = over_rounds("chunks_per_s", [30.04, 28.0, 31.5], 1)
    assert recorded == {"chunks_per_s": 30.0, "chunks_per_s_min": 28.0, "chunks_per_s_max": 31.5}
    spread = Spread.of(recorded, "chunks_per_s")
    assert spread == Spread(30.0, 28.0, 31.5)
    assert spread.width == 3.5
    assert spread.cell() == "30.0 (28.0-31.5)"
    assert spread.cell("{:.0f}") == "30 (28-32)"


def test_a_figure_without_rounds_prints_alone_and_a_missing_one_is_none() -> None:
    single = Spread.of({"p50_ms": 12.345}, "p50_ms")
    assert single == Spread(12.345) and single.width is None and single.cell() == "12.3"
    assert Spread.of({"p50_ms": 1.0}, "p99_ms") is None
    assert Spread.of(None, "p50_ms") is None


WITHIN = "within the rounds' spread of"


@pytest.mark.parametrize(
    ("ours", "theirs", "higher", "verdict", "text"),
    [
        # 33 vs 30 chunks/s, rounds spread over 2: a lead.
        (Spread(33, 32, 34), Spread(30, 29.5, 30.5), True, "ahead", "ahead by 10.0% (spread 6.7%)"),
        # 31 vs 30: the lead (1) is within the wider spread (2): a tie.
        (Spread(31, 30, 32), Spread(30, 29.5, 30.5), True, "tie", f"tie (+3.3%, {WITHIN} 6.7%)"),
        # ... and a deficit within it too.
        (Spread(29, 28, 30), Spread(30, 29.5, 30.5), True, "tie", f"tie (-3.3%, {WITHIN} 6.7%)"),
        # Latency: lower is better; the peers' spread counts as much as ours.
        (Spread(20, 19.9, 20.1), Spread(25, 20, 30), False, "tie", f"tie (+20.0%, {WITHIN} 40.0%)"),
        (Spread(40, 39, 41), Spread(25, 24, 26), False, "behind", "behind by 60.0% (spread 8.0%)"),
        # Twice the other or more: a factor, either way round.
        (
            Spread(275, 270, 280),
            Spread(2070, 2060, 2080),
            False,
            "ahead",
            "ahead by 7.5x (spread 1.0%)",
        ),
        (Spread(40), Spread(2), False, "behind", "behind by 20.0x (no spread recorded)"),
        # Without spreads the verdict stands, and the text says none was recorded.
        (Spread(40), Spread(25), False, "behind", "behind by 60.0% (no spread recorded)"),
        (Spread(25), Spread(25), False, "tie", "tie (+0.0%)"),
    ],
)
def test_a_lead_counts_only_beyond_the_spread(
    ours: Spread, theirs: Spread, higher: bool, verdict: str, text: str
) -> None:
    assert versus(ours, theirs, higher_is_better=higher) == (verdict, text)
