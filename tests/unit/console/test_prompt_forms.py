"""The Prompts pages' forms read as the API's requests, refusals named by field."""

from __future__ import annotations

import pytest

from myaiserv.console.prompt_forms import (
    FormError,
    PromptForm,
    VersionForm,
    parse_prompt,
    parse_version,
)


def test_a_prompt_form_becomes_the_api_create_request() -> None:
    form = PromptForm(
        name=" greet ",
        template="Hello {name},\r\nbye",
        variables="name",
        model_parameters='{"temperature": 0.2}',
        labels="production, staging",
    )
    parsed = parse_prompt(form)
    assert parsed.name == "greet"
    assert parsed.template == "Hello {name},\nbye"  # a textarea's CRLF is a newline
    assert parsed.variables == ["name"]
    assert parsed.model_parameters == {"temperature": 0.2}
    assert parsed.labels == ["production", "staging"]
    assert parsed.description is None and parsed.comment is None


def test_optional_fields_left_blank_are_the_api_defaults() -> None:
    parsed = parse_version(VersionForm(template="Hi {x}"))
    assert parsed.variables is None and parsed.labels == [] and parsed.model_parameters == {}


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (PromptForm(name="", template="x"), "name"),
        (PromptForm(name="has space", template="x"), "name"),
        (PromptForm(name="ok", template=""), "template"),
        (PromptForm(name="ok", template="x", model_parameters="[1]"), "model_parameters"),
        (PromptForm(name="ok", template="x", model_parameters="{nope"), "model_parameters"),
        (PromptForm(name="ok", template="x", labels="Not A Label"), "labels"),
    ],
)
def test_bad_input_names_its_field(form: PromptForm, field: str) -> None:
    with pytest.raises(FormError) as refused:
        parse_prompt(form)
    assert field in refused.value.errors, refused.value.errors
