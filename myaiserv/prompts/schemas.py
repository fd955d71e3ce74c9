"""Prompts over the wire. Unknown fields are rejected, so a typo is a 400, not a no-op."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from myaiserv.kit.index_state import IndexState

# ``$`` in a msgspec pattern also matches before a trailing newline; the ``fullmatch``
# checks in ``__post_init__`` close that gap (the patterns stay for the OpenAPI schema).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
LABEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
MAX_VERSION = 2**31 - 1  # prompt_versions.number is an INTEGER

Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=rf"^{NAME_PATTERN.pattern}$")
]
Description = Annotated[str, msgspec.Meta(max_length=10_000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=100)]
Label = Annotated[str, msgspec.Meta(pattern=rf"^{LABEL_PATTERN.pattern}$")]
Labels = Annotated[list[Label], msgspec.Meta(max_length=50)]
Template = Annotated[str, msgspec.Meta(min_length=1, max_length=200_000)]
VariableName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Variables = Annotated[list[VariableName], msgspec.Meta(max_length=1000)]
Comment = Annotated[str, msgspec.Meta(max_length=10_000)]
VersionNumber = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]


def _check_labels(labels: list[str] | None) -> None:
    for label in labels or ():
        if not LABEL_PATTERN.fullmatch(label):
            raise ValueError(f"label {label!r} does not match {LABEL_PATTERN.pattern}")


class PromptCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    template: Template
    description: Description | None = None
    tags: Tags = msgspec.field(default_factory=list)
    variables: Variables | None = None  # None: inferred from the template
    model_parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    comment: Comment | None = None
    labels: Labels = msgspec.field(default_factory=lambda: ["production"])  # for version 1

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name {self.name!r} does not match {NAME_PATTERN.pattern}")
        _check_labels(self.labels)


class PromptUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET


class VersionCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    template: Template
    variables: Variables | None = None  # None: inferred from the template
    model_parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    comment: Comment | None = None
    labels: Labels = msgspec.field(default_factory=list)  # labels that move to this version

    def __post_init__(self) -> None:
        _check_labels(self.labels)


class LabelSet(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: VersionNumber


class RenderRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    variables: dict[str, Any] = msgspec.field(default_factory=dict)
    label: Label | None = None  # default "production", unless ``version`` pins one
    version: VersionNumber | None = None

    def __post_init__(self) -> None:
        _check_labels([self.label] if self.label is not None else [])


class PromptVersionOut(msgspec.Struct, kw_only=True):
    id: UUID
    prompt_id: UUID
    number: int
    template: str
    variables: list[str]
    model_parameters: dict[str, Any]
    comment: str | None
    labels: list[str]  # the labels pointing at this version
    created_at: datetime


class PromptOut(IndexState, kw_only=True):
    id: UUID
    name: str
    description: str | None
    tags: list[str]
    labels: dict[str, int]  # label -> version number
    latest_version: int
    version: int  # goes up by one on every change (the index's external version)
    created_at: datetime
    updated_at: datetime
    latest: PromptVersionOut | None = None


class PromptPage(msgspec.Struct, kw_only=True):
    items: list[PromptOut]
    next_cursor: str | None


class PromptVersionPage(msgspec.Struct, kw_only=True):
    items: list[PromptVersionOut]
    next_cursor: str | None


class RenderOut(msgspec.Struct, kw_only=True):
    text: str
    prompt_id: UUID
    name: str
    version: int
