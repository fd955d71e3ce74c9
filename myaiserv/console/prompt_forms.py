"""The Prompts pages' forms read as the API's own requests: the fields a person types
become the ``PromptCreate``/``VersionCreate`` the API validates, so a form refuses what
the API refuses, and each refusal is named by its field for the page to show beside it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from myaiserv.errors import AppError
from myaiserv.prompts.schemas import MAX_VERSION, PromptCreate, VersionCreate

Errors = dict[str, str]


@dataclass
class VersionForm:
    template: str = ""
    variables: str = ""
    model_parameters: str = ""
    comment: str = ""
    labels: str = ""


@dataclass
class PromptForm(VersionForm):
    """A new prompt: its first version's fields, and its own."""

    name: str = ""
    description: str = ""


@dataclass
class LabelForm:
    label: str = ""
    version: str = ""


class FormError(Exception):
    """A form's input refused: ``errors`` maps each field to its message."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _names(text: str) -> list[str]:
    """A comma- or whitespace-separated list, blanks dropped."""
    return [part for part in re.split(r"[\s,]+", text) if part]


def form_text(value: str) -> str:
    """A textarea's text as typed: browsers send its line breaks as CRLF."""
    return value.replace("\r\n", "\n")


_AT = re.compile(r"at `\$\.(\w+)")


def _schema_errors(exc: msgspec.ValidationError) -> Errors:
    """msgspec's message names the field as ``at `$.name```; the rest is the reason."""
    message = str(exc)
    found = _AT.search(message)
    if found is None:
        return {"form": message}
    return {found[1]: message[: found.start()].rstrip(" -") or message}


def service_errors(exc: AppError) -> Errors:
    """An API error's fields (problem+json ``errors``, or ``field``) as form errors."""
    errors: Errors = {}
    for item in exc.extra.get("errors", []):
        errors.setdefault(str(item["field"]), str(item["message"]))
    if not errors:
        field_name = str(exc.extra.get("field", "form"))
        errors[field_name] = exc.detail.removeprefix(f"{field_name}: ")
    return errors


def _version_payload(form: VersionForm) -> dict[str, Any]:
    payload: dict[str, Any] = {"template": form_text(form.template), "labels": _names(form.labels)}
    if form.variables.strip():
        payload["variables"] = _names(form.variables)
    if form.model_parameters.strip():
        try:
            parameters = json.loads(form.model_parameters)
        except ValueError as exc:
            raise FormError({"model_parameters": f"not JSON: {exc}"}) from None
        if not isinstance(parameters, dict):
            raise FormError({"model_parameters": 'a JSON object, e.g. {"temperature": 0.2}'})
        payload["model_parameters"] = parameters
    if form.comment.strip():
        payload["comment"] = form_text(form.comment)
    return payload


def parse_prompt(form: PromptForm) -> PromptCreate:
    """The form as the API's create request, validated by the API's own schema."""
    payload = {"name": form.name.strip(), **_version_payload(form)}
    if form.description.strip():
        payload["description"] = form_text(form.description)
    try:
        return msgspec.convert(payload, PromptCreate)
    except msgspec.ValidationError as exc:
        raise FormError(_schema_errors(exc)) from None


def parse_version(form: VersionForm) -> VersionCreate:
    try:
        return msgspec.convert(_version_payload(form), VersionCreate)
    except msgspec.ValidationError as exc:
        raise FormError(_schema_errors(exc)) from None


def version_number(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_VERSION:
        raise FormError({"version": "a version number (1, 2, ...)"})
    return int(value)
