"""Typed metadata: values coerced to their declared type, only whitelisted keys typed."""

from __future__ import annotations

import math

import pytest

from myaiserv.search.metadata import coerce, typed


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (1990, "long", 1990),
        ("1990", "long", 1990),
        ("19.5", "long", None),
        (True, "long", None),
        ("2.5", "double", 2.5),
        (math.inf, "double", None),
        ("yes", "boolean", True),
        ("maybe", "boolean", None),
        ("2020-10-01", "date", "2020-10-01T00:00:00+00:00"),
        ("soon", "date", None),
        (3, "keyword", "3"),
        ({"a": 1}, "keyword", None),
    ],
)
def test_metadata_values_are_coerced_to_their_declared_type(value, kind, expected):
    assert coerce(value, kind) == expected


def test_only_whitelisted_metadata_is_typed():
    fields = {"year": "long", "lang": "keyword"}
    assert typed({"year": "2001", "colour": "red", "lang": None}, fields) == {"year": 2001}
