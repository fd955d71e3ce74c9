"""What a provider secret's name and value may be, checked before anything is stored."""

from __future__ import annotations

import pytest

from myaiserv.config import ConsoleSettings
from myaiserv.kit.validation import InvalidInputError
from myaiserv.secrets.service import MAX_VALUE, check_name, check_value


@pytest.mark.parametrize("name", ["openai", "vault-key", "a.b_c-1", "A" * 100])
def test_names_a_provider_can_refer_to(name: str) -> None:
    assert check_name(f" {name} ") == name


@pytest.mark.parametrize("name", ["", " ", "-leading", "with space", "a/b", "x" * 101, "é"])
def test_names_refused(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_name(name)
    assert caught.value.field == "name"


def test_values_are_trimmed_and_bounded() -> None:
    assert check_value("  sk-123\n") == "sk-123"
    for bad in ("", "   ", "a\x00b", "x" * (MAX_VALUE + 1)):
        with pytest.raises(InvalidInputError) as caught:
            check_value(bad)
        assert caught.value.field == "value"
        assert bad.strip() == "" or bad not in caught.value.message


def test_operator_tenants_read_from_a_comma_separated_variable() -> None:
    assert ConsoleSettings(operator_tenants="ops, platform ,").operator_tenants == [
        "ops",
        "platform",
    ]
    assert ConsoleSettings().operator_tenants == []
