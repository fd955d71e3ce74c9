"""App-side stemming."""

from __future__ import annotations

from myaiserv.search.analysis import stems


def test_stems_drop_stop_words_and_conflate_forms():
    assert stems("The indexing of Libraries' catalogues") == stems("index library catalogue")
    assert stems("the of and") == ""
    assert stems("Running runs", "none") == ""
