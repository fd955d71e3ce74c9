from __future__ import annotations

from typing import Any

import pytest

from myaiserv.kit.validation import (
    FLATTENED_DEPTH_LIMIT,
    MAX_TERM_BYTES,
    InvalidInputError,
    check_flattened,
    check_metadata,
)


def nested(levels: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def test_objects_may_nest_to_the_depth_limit_and_arrays_do_not_count() -> None:
    check_flattened(nested(FLATTENED_DEPTH_LIMIT), "metadata")
    check_flattened({"list": [[{"k": nested(FLATTENED_DEPTH_LIMIT - 2)}]]}, "metadata")
    with pytest.raises(InvalidInputError) as raised:
        check_flattened(nested(FLATTENED_DEPTH_LIMIT + 1), "metadata")
    assert raised.value.field == "metadata" + ".k" * FLATTENED_DEPTH_LIMIT


def test_a_term_counts_its_key_path_the_separator_and_utf8_bytes() -> None:
    path = "a.bb"  # 4 bytes, then NUL, then the value
    fits = {"a": {"bb": "é" * ((MAX_TERM_BYTES - 5) // 2) + "x" * ((MAX_TERM_BYTES - 5) % 2)}}
    check_flattened(fits, "metadata")
    too_long = {"a": {"bb": fits["a"]["bb"] + "x"}}
    with pytest.raises(InvalidInputError) as raised:
        check_flattened(too_long, "metadata")
    assert raised.value.field == f"metadata.{path}"
    assert str(MAX_TERM_BYTES + 1) in raised.value.message


def test_numbers_and_booleans_are_terms_too_and_null_is_none() -> None:
    check_flattened({"n": 1.5, "b": True, "none": None, "list": [1, "two"]}, "metadata")
    with pytest.raises(InvalidInputError):
        check_flattened({"k" * MAX_TERM_BYTES: 7}, "metadata")


def test_check_metadata_wants_an_object_without_nul_within_the_value_limit() -> None:
    assert check_metadata({"a": "b"}) == {"a": "b"}
    for bad, field in [
        ([], "metadata"),
        ({"a": "b\x00"}, "metadata.a"),
        ({"a": "x" * 11}, "metadata.a"),
    ]:
        with pytest.raises(InvalidInputError) as raised:
            check_metadata(bad, max_value_chars=10)
        assert raised.value.field == field
