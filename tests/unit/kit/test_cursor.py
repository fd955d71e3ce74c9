"""The one cursor codec: opaque, versioned, optionally bound to a request."""

from __future__ import annotations

import base64
import json

import pytest

from myaiserv.kit import cursor as codec
from myaiserv.kit.cursor import InvalidCursorError
from myaiserv.kit.validation import InvalidInputError


def raw(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_round_trip_is_url_safe_and_unpadded():
    token = codec.encode({"t": "2026-01-01T00:00:00+00:00", "id": "x" * 7, "n": [1.5, "~"]})
    assert "=" not in token and "+" not in token and "/" not in token
    assert codec.decode(token) == {
        "t": "2026-01-01T00:00:00+00:00",
        "id": "xxxxxxx",
        "n": [1.5, "~"],
    }


def test_a_bound_cursor_is_only_taken_back_by_its_request():
    fp = codec.fingerprint("tenant", {"query": "x"})
    token = codec.encode({"o": 3}, bound_to=fp)
    assert codec.decode(token, bound_to=fp) == {"o": 3}
    for other in (codec.fingerprint("other-tenant", {"query": "x"}), None):
        with pytest.raises(InvalidCursorError, match="another search"):
            codec.decode(token, bound_to=other)
    with pytest.raises(InvalidCursorError, match="another search"):
        codec.decode(codec.encode({"o": 3}), bound_to=fp)


def test_fingerprints_ignore_key_order_and_tell_requests_apart():
    assert codec.fingerprint({"a": 1, "b": 2}) == codec.fingerprint({"b": 2, "a": 1})
    assert codec.fingerprint({"a": 1}) != codec.fingerprint({"a": 2})
    assert len(codec.fingerprint("x")) == 24


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage!",
        "%%%",
        "é",
        raw({}),  # no version
        raw({"v": 2, "o": 1}),  # a later format
        raw([1, 2]),
        raw("v"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        raw({"v": 1, "deep": "x"})[:-3],  # truncated
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
        "A" * (codec.MAX_CHARS + 1),
    ],
)
def test_anything_else_is_a_422_naming_the_cursor(token: str):
    with pytest.raises(InvalidInputError) as caught:
        codec.decode(token)
    error = caught.value
    assert (error.status_code, error.field) == (422, "cursor")
    assert error.extra["errors"] == [{"field": "cursor", "message": error.detail[8:]}]


def test_positions_cannot_shadow_the_envelope():
    with pytest.raises(ValueError, match="keys"):
        codec.encode({"v": 2})


@pytest.mark.parametrize("value", [None, "3", 3.0, True, 0, 11])
def test_integer_positions_are_checked(value: object):
    with pytest.raises(InvalidCursorError):
        codec.integer({"n": value}, "n", low=1, high=10)
    assert codec.integer({"n": 10}, "n", low=1, high=10) == 10


def test_a_signed_cursor_is_refused_if_edited_or_signed_with_another_key():
    key = b"server key"
    token = codec.encode({"o": 3}, bound_to="fp", key=key)
    payload, dot, signature = token.partition(".")
    assert dot and len(signature) == 43  # HMAC-SHA256, base64url
    assert codec.decode(token, bound_to="fp", key=key) == {"o": 3}
    edited = codec.encode({"o": 4}, bound_to="fp").partition(".")[0]
    for forged in (f"{edited}.{signature}", f"{payload}.{signature[:-1]}A"):
        with pytest.raises(codec.TamperedCursorError) as caught:
            codec.decode(forged, bound_to="fp", key=key)
        assert (caught.value.status_code, caught.value.field) == (400, "cursor")
    with pytest.raises(codec.TamperedCursorError):
        codec.decode(token, bound_to="fp", key=b"another key")
    # Not signed at all, or not ours: the usual 422.
    for other in (payload, f".{signature}", "garbage!"):
        with pytest.raises(InvalidCursorError) as refused:
            codec.decode(other, bound_to="fp", key=key)
        assert refused.value.status_code == 422
