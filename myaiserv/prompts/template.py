"""Prompt templates: ``{name}`` placeholders, ``{{`` and ``}}`` for literal braces.

The syntax is a strict subset of Python's format strings. A placeholder holds a plain
variable name only: a template is user input, and ``str.format`` on it would let
``{x.__class__}`` walk objects, so attribute access, indexing, positional fields,
conversions and format specs are refused when a template is stored, and rendering
substitutes names itself instead of calling ``str.format``. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_NAME_LENGTH = 100  # prompt_versions.variables holds VARCHAR(100)
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"\{\{|\}\}|\{[^{}]*\}|[{}]")
_BRACES_HINT = "write '{{' and '}}' for literal braces"


class TemplateError(ValueError):
    """What is wrong, as (field, message) pairs: fields are ``template``, ``variables``
    or ``variables.<name>``, so callers can name them in their errors."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


@dataclass(frozen=True)
class Var:
    name: str


Part = str | Var


def _where(template: str, pos: int) -> str:
    line = template.count("\n", 0, pos) + 1
    column = pos - (template.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


_SPECIALS = (
    ("!", "a conversion (!r, !s, !a)"),
    (":", "a format spec"),
    (".", "attribute access"),
    ("[", "indexing"),
)


def _field_problem(inner: str) -> str | None:
    """Why ``{inner}`` is not a plain-name placeholder, or None when it is one."""
    if NAME.fullmatch(inner):
        if len(inner) > MAX_NAME_LENGTH:
            return f"variable names are at most {MAX_NAME_LENGTH} characters"
        return None
    if not inner.strip():
        return "an empty placeholder; name the variable, e.g. {question}"
    found = [(inner.index(char), what) for char, what in _SPECIALS if char in inner]
    if found:
        return f"{min(found)[1]} is not allowed; use a plain name, e.g. {{question}}"
    if inner.isdigit():
        return "positional placeholders are not allowed; name the variable, e.g. {question}"
    return "not a variable name (ASCII letters, digits and '_', not starting with a digit)"


def parse(template: str) -> list[Part]:
    """Literal text and placeholders, in order; TemplateError (field ``template``) names
    the first syntax problem and where it is."""
    parts: list[Part] = []
    text: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        text.append(template[pos : match.start()])
        pos = match.end()
        piece = match.group()
        if piece in ("{{", "}}"):
            text.append(piece[0])
            continue
        where = _where(template, match.start())
        if piece == "{":
            problem = f"'{{' at {where} is never closed; {_BRACES_HINT}"
        elif piece == "}":
            problem = f"single '}}' at {where}; {_BRACES_HINT}"
        else:
            reason = _field_problem(piece[1:-1])
            if reason is None:
                literal = "".join(text)
                if literal:
                    parts.append(literal)
                text = []
                parts.append(Var(piece[1:-1]))
                continue
            shown = piece if len(piece) <= 60 else piece[:57] + "..."
            problem = f"{shown} at {where}: {reason} ({_BRACES_HINT})"
        raise TemplateError([("template", problem)])
    text.append(template[pos:])
    literal = "".join(text)
    if literal:
        parts.append(literal)
    return parts


def variables_of(template: str | list[Part]) -> list[str]:
    """The names a template uses, each once, in order of first use."""
    parts = parse(template) if isinstance(template, str) else template
    return list(dict.fromkeys(p.name for p in parts if isinstance(p, Var)))


def check_variables(template: str, declared: list[str] | None) -> list[str]:
    """The variables to store for ``template``: inferred when ``declared`` is None, else
    ``declared`` (deduplicated), which must be exactly the set the template uses."""
    used = variables_of(template)
    if declared is None:
        return used
    declared = list(dict.fromkeys(declared))
    problems: list[tuple[str, str]] = []
    unused = [name for name in declared if name not in used]
    undeclared = [name for name in used if name not in declared]
    if unused:
        problems.append(("variables", f"not used in the template: {', '.join(unused)}"))
    if undeclared:
        problems.append(
            ("variables", f"used in the template but not declared: {', '.join(undeclared)}")
        )
    if problems:
        raise TemplateError(problems)
    return declared


def _text_of(value: Any) -> str | None:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def render(template: str | list[Part], variables: Mapping[str, Any]) -> str:
    """Substitute every placeholder. Values are strings, numbers or booleans (written as
    JSON spells them: ``true``/``false``). Every variable the template uses must be given
    and no other: TemplateError names each offender as ``variables.<name>``."""
    parts = parse(template) if isinstance(template, str) else template
    used = variables_of(parts)
    problems = [(f"variables.{name}", "missing") for name in used if name not in variables]
    values: dict[str, str] = {}
    for name, value in variables.items():
        if name not in used:
            problems.append((f"variables.{name}", "not used by this template"))
            continue
        text = _text_of(value)
        if text is None:
            problems.append((f"variables.{name}", "must be a string, a number or a boolean"))
        else:
            values[name] = text
    if problems:
        raise TemplateError(problems)
    return "".join(values[p.name] if isinstance(p, Var) else p for p in parts)
