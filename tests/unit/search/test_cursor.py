"""What a search cursor holds, through the one codec."""

from __future__ import annotations

import pytest

from myaiserv.kit import cursor as codec
from myaiserv.kit.validation import InvalidInputError
from myaiserv.search.cursor import Cursor, decode


def test_cursor_round_trip_and_refusals():
    fp = codec.fingerprint("tenant", {"query": "x"})
    cursor = Cursor(pit="p1", offset=20, window=100)
    assert decode(cursor.encode(fp), fp) == cursor
    assert decode(Cursor("p", after=[1.5, 7]).encode(fp), fp).after == [1.5, 7]
    with pytest.raises(InvalidInputError, match="another search"):
        decode(cursor.encode(fp), codec.fingerprint("other-tenant", {"query": "x"}))
    forged = [
        Cursor("p", offset=-1).encode(fp),
        Cursor("p", window=10_001).encode(fp),
        codec.encode({"p": 1, "o": 0}, bound_to=fp),
        codec.encode({"p": "p", "o": 0, "a": "x"}, bound_to=fp),
        codec.encode({"p": "p"}, bound_to=fp),
    ]
    for bad in ("", "%%%", "eyJ2IjoyfQ", *forged):
        with pytest.raises(InvalidInputError, match="cursor"):
            decode(bad, fp)
