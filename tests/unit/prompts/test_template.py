"""Prompt templates: parsing, variable inference and checks, rendering, rejections."""

from __future__ import annotations

import pytest

from myaiserv.kit.validation import InvalidInputError
from myaiserv.prompts import service
from myaiserv.prompts.template import (
    TemplateError,
    Var,
    check_variables,
    parse,
    render,
    variables_of,
)


def problems(exc: pytest.ExceptionInfo[TemplateError]) -> dict[str, str]:
    return dict(exc.value.problems)


def test_parse_splits_text_and_placeholders() -> None:
    assert parse("Hi {name}, see {{x}} and }} {q}") == [
        "Hi ",
        Var("name"),
        ", see {x} and } ",
        Var("q"),
    ]
    assert parse("no placeholders") == ["no placeholders"]
    assert parse("{a}{b}") == [Var("a"), Var("b")]
    assert parse("{{}}") == ["{}"]


@pytest.mark.parametrize(
    "template",
    ["Q: {question}", "{_private} {x1} {CamelCase}", "{{literal}} {a}", "{" + "v" * 100 + "}"],
)
def test_valid_templates_parse_like_python_format(template: str) -> None:
    names = variables_of(template)
    values = {n: f"<{n}>" for n in names}
    assert render(template, values) == template.format(**values)


def test_variables_are_inferred_once_in_order_of_first_use() -> None:
    assert variables_of("{b} {a} {b} {{c}}") == ["b", "a"]
    assert check_variables("{b} {a} {b}", None) == ["b", "a"]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{a.b}", "attribute access"),
        ("{a.__class__}", "attribute access"),
        ("{a[0]}", "indexing"),
        ("{0}", "positional"),
        ("{}", "empty placeholder"),
        ("{ }", "empty placeholder"),
        ("{a!r}", "conversion"),
        ("{a:>10}", "format spec"),
        ("{a!s:>10}", "conversion"),
        ('{"json": 1}', "format spec"),
        ("{ a }", "not a variable name"),
        ("{1abc}", "not a variable name"),
        ("{é}", "not a variable name"),
        ("{" + "v" * 101 + "}", "at most 100"),
        ("open {a", "never closed"),
        ("{a{b}}", "never closed"),
        ("close }", "single '}'"),
        ("{{}", "single '}'"),
    ],
)
def test_rejected_templates_name_the_template_field(template: str, reason: str) -> None:
    with pytest.raises(TemplateError) as exc:
        parse(template)
    [(field, message)] = exc.value.problems
    assert field == "template"
    assert reason in message
    assert "line 1, column" in message


def test_error_positions_count_lines_and_columns() -> None:
    with pytest.raises(TemplateError) as exc:
        parse("first line\nsecond {a.b}")
    assert "line 2, column 8" in problems(exc)["template"]


def test_declared_variables_must_match_the_template() -> None:
    assert check_variables("{a} {b}", ["b", "a", "b"]) == ["b", "a"]
    assert check_variables("plain", []) == []
    with pytest.raises(TemplateError) as exc:
        check_variables("{a} {b}", ["a", "c"])
    fields = [f for f, _ in exc.value.problems]
    assert fields == ["variables", "variables"]
    text = str(exc.value)
    assert "not used in the template: c" in text
    assert "not declared: b" in text


def test_declared_variables_of_a_bad_template_report_the_template() -> None:
    with pytest.raises(TemplateError) as exc:
        check_variables("{a.b}", ["a"])
    assert "template" in problems(exc)


def test_render_substitutes_scalars() -> None:
    out = render("{s}|{i}|{f}|{t}|{f2}|{{s}}", {"s": "x", "i": 3, "f": 0.5, "t": True, "f2": False})
    assert out == "x|3|0.5|true|false|{s}"


def test_render_does_not_reinterpret_values() -> None:
    """A value that looks like a placeholder is text, not a second template pass."""
    assert render("{a}", {"a": "{b} {0} {a.__class__}"}) == "{b} {0} {a.__class__}"


def test_render_names_missing_unknown_and_bad_values() -> None:
    with pytest.raises(TemplateError) as exc:
        render("{question} {context}", {"context": "c"})
    assert exc.value.problems == [("variables.question", "missing")]

    with pytest.raises(TemplateError) as exc:
        render("{a}", {"a": "x", "extra": "y"})
    assert exc.value.problems == [("variables.extra", "not used by this template")]

    for bad in (None, [1], {"k": "v"}):
        with pytest.raises(TemplateError) as exc:
            render("{a}", {"a": bad})
        assert list(problems(exc)) == ["variables.a"]


def test_render_reports_every_problem_at_once() -> None:
    with pytest.raises(TemplateError) as exc:
        render("{a} {b}", {"c": 1})
    assert [f for f, _ in exc.value.problems] == ["variables.a", "variables.b", "variables.c"]


def test_service_render_raises_a_422_naming_each_field() -> None:
    assert service.render("Hello {who}", {"who": "you"}) == "Hello you"
    assert service.PromptService.render("{a}", {"a": 1}) == "1"
    with pytest.raises(InvalidInputError) as exc:
        service.render("{question} {context}", {})
    err = exc.value
    assert err.status_code == 422
    assert err.detail == "variables.question: missing; variables.context: missing"
    assert err.extra["errors"] == [
        {"field": "variables.question", "message": "missing"},
        {"field": "variables.context", "message": "missing"},
    ]
