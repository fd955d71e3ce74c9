"""Figures measured over rounds, and how two of them compare: one convention for every
benchmark that writes them and every table and plot that shows them.

A benchmark repeats a measurement in rounds and records ``key`` (the median of the
rounds), ``key_min`` and ``key_max`` (the rounds' lowest and highest: ``over_rounds``).
The report reads them back as a ``Spread``, prints it as ``median (lowest-highest)``, and
calls a lead a lead only when it is larger than the spread (``versus``): a difference
within the rounds' own scatter is a tie.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["ahead", "behind", "tie"]


def over_rounds(key: str, values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """One figure per round, as recorded: ``key`` the median, ``key_min`` and ``key_max``."""
    return {
        key: round(statistics.median(values), digits),
        f"{key}_min": round(min(values), digits),
        f"{key}_max": round(max(values), digits),
    }


@dataclass(frozen=True)
class Spread:
    """A figure: the median over rounds and, where recorded, the rounds' lowest and highest."""

    value: float
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, figures: dict[str, Any] | None, key: str) -> Spread | None:
        """``figures[key]`` with its ``_min``/``_max``; None when the figure is absent."""
        if not isinstance(figures, dict) or figures.get(key) is None:
            return None
        low, high = figures.get(f"{key}_min"), figures.get(f"{key}_max")
        if low is None or high is None:
            return cls(float(figures[key]))
        return cls(float(figures[key]), float(low), float(high))

    @property
    def width(self) -> float | None:
        """Highest minus lowest round; None when the rounds were not recorded."""
        return None if self.low is None or self.high is None else self.high - self.low

    def cell(self, fmt: str = "{:.1f}") -> str:
        """``median (lowest-highest)``, or the median alone when there is no spread."""
        text = fmt.format(self.value)
        if self.low is None or self.high is None:
            return text
        return f"{text} ({fmt.format(self.low)}-{fmt.format(self.high)})"


def versus(ours: Spread, theirs: Spread, *, higher_is_better: bool) -> tuple[Verdict, str]:
    """Where ``ours`` stands against ``theirs``, and a short text saying so. The lead (or
    deficit) is a tie unless it is larger than the wider of the two spreads; without any
    spread recorded the text says so. The lead is relative to ``theirs`` (a factor where
    one figure is at least twice the other)."""
    lead = ours.value - theirs.value if higher_is_better else theirs.value - ours.value
    widths = [w for w in (ours.width, theirs.width) if w is not None]
    spread = max(widths) if widths else None
    scale = abs(theirs.value) or 1.0
    verdict: Verdict = "ahead" if lead > 0 else "behind"
    if lead == 0 or (spread is not None and abs(lead) <= spread):
        verdict = "tie"
    if verdict == "tie":
        within = "" if spread is None else f", within the rounds' spread of {spread / scale:.1%}"
        return verdict, f"tie ({lead / scale:+.1%}{within})"
    low, high = sorted((abs(ours.value), abs(theirs.value)))
    # Past twice (or half) the other's figure, a factor reads better than a percentage.
    by = (
        f"{verdict} by {high / low:.1f}x"
        if low and high >= 2 * low
        else f"{verdict} by {abs(lead) / scale:.1%}"
    )
    if spread is None:
        return verdict, f"{by} (no spread recorded)"
    return verdict, f"{by} (spread {spread / scale:.1%})"
