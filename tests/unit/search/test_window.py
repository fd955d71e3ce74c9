"""The window kept behind a search cursor: its life, and its encoding for Redis."""

from __future__ import annotations

import msgspec
import pytest

from myaiserv.search.schemas import FacetBucket, Total
from myaiserv.search.window import Entry, Window, seconds


@pytest.mark.parametrize(("keep_alive", "s"), [("30s", 30), ("2m", 120), ("1h", 3600), ("0s", 1)])
def test_the_keep_alive_in_seconds(keep_alive: str, s: int):
    assert seconds(keep_alive) == s


@pytest.mark.parametrize("bad", ["2", "m", "2d", " 2m", "-1s"])
def test_a_keep_alive_that_is_not_one_is_refused(bad: str):
    with pytest.raises(ValueError, match="keep-alive"):
        seconds(bad)


def test_a_window_round_trips_through_msgpack_compactly():
    entries = [
        Entry(f"documents/d{i}", "documents", f"d{i}:0:abcdef0123456789", 0.03, {"bm25": i}, {})
        for i in range(100)
    ]
    window = Window(
        entries=entries,
        total=Total(value=1234, relation="gte"),
        facets={"tags": [FacetBucket("bio", 3)]},
        more=True,
    )
    raw = msgspec.msgpack.encode(window)
    assert msgspec.msgpack.decode(raw, type=Window) == window
    assert window.ids()[:2] == ["d0:0:abcdef0123456789", "d1:0:abcdef0123456789"]
    assert len(raw) < 100 * 80  # ids and numbers, never sources or highlights
