"""What a search cursor holds, through the one codec: signed, bound to its search."""

from __future__ import annotations

import base64
import json

import pytest

from myaiserv.config import Settings
from myaiserv.kit import cursor as codec
from myaiserv.kit.cursor import TamperedCursorError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.search.cursor import MAX_OFFSET, Cursor, decode, signing_key

KEY = b"k" * 32
FP = codec.fingerprint("tenant", {"query": "x"})


def test_cursor_round_trip_and_refusals():
    cursor = Cursor("w1", offset=20)
    assert decode(cursor.encode(FP, KEY), FP, KEY) == cursor
    deep = Cursor("w1", offset=100, pit="p", after=[1.5, 7])
    assert decode(deep.encode(FP, KEY), FP, KEY) == deep
    with pytest.raises(InvalidInputError, match="another search"):
        decode(cursor.encode(FP, KEY), codec.fingerprint("other-tenant", {"query": "x"}), KEY)
    forged = [
        Cursor("w", offset=-1).encode(FP, KEY),
        Cursor("w", offset=MAX_OFFSET + 1).encode(FP, KEY),
        codec.encode({"w": 1, "o": 0}, bound_to=FP, key=KEY),
        codec.encode({"w": "w", "o": 0, "a": "x"}, bound_to=FP, key=KEY),
        codec.encode({"w": "w", "o": 0, "p": 3}, bound_to=FP, key=KEY),
        codec.encode({"w": "w"}, bound_to=FP, key=KEY),
        codec.encode({"w": "w", "o": 0}, bound_to=FP),  # unsigned
    ]
    for bad in ("", "%%%", "eyJ2IjoyfQ", *forged):
        with pytest.raises(InvalidInputError, match="cursor") as caught:
            decode(bad, FP, KEY)
        assert caught.value.status_code == 422


def _edit(token: str, **changes: object) -> str:
    payload, _, signature = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps({**data, **changes}).encode()).decode()
    return f"{edited.rstrip('=')}.{signature}"


@pytest.mark.parametrize(
    "changes", [{"o": 0}, {"o": 40}, {"w": "another"}, {"p": "pit"}, {"a": [9.9, 1]}]
)
def test_an_edited_cursor_is_a_400_naming_the_cursor(changes: dict):
    token = Cursor("w1", offset=20, pit="p1", after=[1.0, 2]).encode(FP, KEY)
    with pytest.raises(TamperedCursorError) as caught:
        decode(_edit(token, **changes), FP, KEY)
    error = caught.value
    assert (error.status_code, error.field) == (400, "cursor")
    # Signed by another deployment's key: the same.
    with pytest.raises(TamperedCursorError):
        decode(token, FP, b"another key")


def test_the_signing_key_is_the_setting_or_derived_from_the_database_url():
    configured = Settings(search={"cursor_secret": "s3cret"})
    assert signing_key(configured) == b"s3cret"
    a = Settings(database_url="postgresql://u:p1@h/db")
    b = Settings(database_url="postgresql://u:p2@h/db")
    assert signing_key(a) == signing_key(a.model_copy()) != signing_key(b)
    assert len(signing_key(a)) == 32 and b"p1" not in signing_key(a)
