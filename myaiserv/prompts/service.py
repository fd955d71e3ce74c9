"""Prompts: named templates with immutable, numbered versions and labels that point at
one of them. Every change bumps the prompt's version and writes its outbox row in the
same transaction; the caller's unit of work commits."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit import log as audit
from myaiserv.db.models import IndexStatus, Prompt, PromptVersion
from myaiserv.errors import ConflictError, NotFoundError
from myaiserv.kit.pagination import below, below_cursor
from myaiserv.kit.validation import InvalidInputError, reject_nul
from myaiserv.prompts import template as templates
from myaiserv.prompts.repository import PromptRepository
from myaiserv.prompts.schemas import LABEL_PATTERN, MAX_VERSION, NAME_PATTERN

PRODUCTION = "production"


@dataclass
class NewVersion:
    template: str
    variables: list[str] | None = None  # None: inferred from the template
    model_parameters: dict[str, Any] = field(default_factory=dict)
    comment: str | None = None
    labels: list[str] = field(default_factory=list)  # labels that move to this version


@dataclass
class NewPrompt:
    name: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)


def _invalid(problems: list[tuple[str, str]]) -> InvalidInputError:
    """One 422 that names every offending field."""
    error = InvalidInputError(*problems[0])
    error.detail = "; ".join(f"{name}: {message}" for name, message in problems)
    error.extra = {"errors": [{"field": name, "message": message} for name, message in problems]}
    return error


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill ``template``'s placeholders (pure). A missing, unknown or non-scalar variable
    is an InvalidInputError (422) naming each one as ``variables.<name>``."""
    try:
        return templates.render(template, variables)
    except templates.TemplateError as exc:
        raise _invalid(exc.problems) from None


def _check_label(label: str) -> None:
    if not LABEL_PATTERN.fullmatch(label):
        raise InvalidInputError(
            "label", f"{label[:60]!r} is not a label name ({LABEL_PATTERN.pattern})"
        )


class PromptService:
    render = staticmethod(render)

    def __init__(
        self,
        session: AsyncSession,
        tenant_id: UUID,
        *,
        actor: str = audit.CLI,
        ip: str | None = None,
    ) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.repo = PromptRepository(session, tenant_id)
        self.actor = actor
        self.ip = ip

    def _audit_labels(self, prompt: Prompt, before: dict[str, int]) -> None:
        """Labels decide which template production runs: every move is audited."""
        after = dict(prompt.labels or {})
        for label in sorted(set(before) | set(after)):
            if before.get(label) == after.get(label):
                continue
            audit.add(
                self.session,
                audit.PROMPT_LABEL_SET if label in after else audit.PROMPT_LABEL_REMOVED,
                actor=self.actor,
                tenant_id=self.tenant_id,
                target=f"prompt:{prompt.name}:{label}",
                ip=self.ip,
                details={
                    "prompt_id": str(prompt.id),
                    "label": label,
                    "from_version": before.get(label),
                    "to_version": after.get(label),
                },
            )

    # -- writes ------------------------------------------------------------------------

    def _prepare_version(self, new: NewVersion) -> dict[str, Any]:
        reject_nul(new.template, "template")
        reject_nul(new.variables, "variables")
        reject_nul(new.model_parameters, "model_parameters")
        reject_nul(new.comment, "comment")
        try:
            variables = templates.check_variables(new.template, new.variables)
        except templates.TemplateError as exc:
            raise _invalid(exc.problems) from None
        return {
            "template": new.template,
            "variables": variables,
            "model_parameters": new.model_parameters,
            "comment": new.comment,
        }

    async def create(self, new: NewPrompt, first: NewVersion) -> tuple[Prompt, PromptVersion]:
        """The prompt and its version 1; ``first.labels`` point at it."""
        reject_nul(new.description, "description")
        reject_nul(new.tags, "tags")
        version_row = self._prepare_version(first)
        prompt = await self.repo.insert(
            {
                "name": new.name,
                "description": new.description,
                "tags": list(dict.fromkeys(new.tags)),
                "labels": dict.fromkeys(first.labels, 1),
                "latest_version": 1,
            }
        )
        if prompt is None:
            raise ConflictError(
                f"name: this tenant already has a prompt named {new.name!r}",
                extra={"field": "name"},
            )
        version = await self.repo.insert_version(
            {**version_row, "prompt_id": prompt.id, "number": 1}
        )
        self._audit_labels(prompt, {})
        await self.repo.record([self.repo.upserted(prompt.id, prompt.version)])
        return prompt, version

    async def add_version(self, prompt_id: UUID, new: NewVersion) -> tuple[Prompt, PromptVersion]:
        """Version ``latest + 1``; ``new.labels`` move to it."""
        row = self._prepare_version(new)
        prompt = await self.get(prompt_id, for_update=True)
        before = dict(prompt.labels or {})
        number = prompt.latest_version + 1
        version = await self.repo.insert_version({**row, "prompt_id": prompt.id, "number": number})
        prompt.latest_version = number
        if new.labels:
            prompt.labels = {**(prompt.labels or {}), **dict.fromkeys(new.labels, number)}
            self._audit_labels(prompt, before)
        await self.repo.touch(prompt)
        return prompt, version

    async def update(self, prompt_id: UUID, changes: dict[str, Any]) -> Prompt:
        prompt = await self.get(prompt_id, for_update=True)
        if "description" in changes:
            reject_nul(changes["description"], "description")
            prompt.description = changes["description"]
        if "tags" in changes:
            reject_nul(changes["tags"], "tags")
            prompt.tags = list(dict.fromkeys(changes["tags"]))
        await self.repo.touch(prompt)
        return prompt

    async def set_label(self, prompt_id: UUID, label: str, number: int) -> Prompt:
        """Point ``label`` at version ``number`` (created if new, moved if not)."""
        _check_label(label)
        prompt = await self.get(prompt_id, for_update=True)
        if (prompt.labels or {}).get(label) == number:
            return prompt  # already so: no change, nothing to re-index
        if await self.repo.get_version(prompt.id, number) is None:
            raise NotFoundError(
                f"version: prompt {prompt_id} has no version {number}",
                extra={"field": "version"},
            )
        before = dict(prompt.labels or {})
        prompt.labels = {**before, label: number}
        self._audit_labels(prompt, before)
        await self.repo.touch(prompt)
        return prompt

    async def remove_label(self, prompt_id: UUID, label: str) -> Prompt:
        _check_label(label)
        prompt = await self.get(prompt_id, for_update=True)
        labels = dict(prompt.labels or {})
        if labels.pop(label, None) is None:
            raise NotFoundError(f"label: prompt {prompt_id} has no label {label!r}")
        before = dict(prompt.labels or {})
        prompt.labels = labels
        self._audit_labels(prompt, before)
        await self.repo.touch(prompt)
        return prompt

    async def delete(self, prompt_id: UUID) -> None:
        """Delete the prompt (its versions cascade)."""
        await self.repo.remove(prompt_id)

    # -- reads -------------------------------------------------------------------------

    async def get(self, prompt_id: UUID, *, for_update: bool = False) -> Prompt:
        return await self.repo.get(prompt_id, for_update=for_update)

    async def get_by_name(self, name: str) -> Prompt:
        # A name that breaks the naming rule cannot exist (and never reaches SQL).
        prompt = await self.repo.get_by_name(name) if NAME_PATTERN.fullmatch(name) else None
        if prompt is None:
            raise NotFoundError(f"prompt {name[:200]!r} not found")
        return prompt

    async def get_detail(self, prompt_id: UUID) -> tuple[Prompt, PromptVersion]:
        """The prompt and its latest version."""
        prompt = await self.get(prompt_id)
        return prompt, await self._version(prompt, prompt.latest_version)

    async def get_detail_by_name(self, name: str) -> tuple[Prompt, PromptVersion]:
        """The prompt and its latest version."""
        prompt = await self.get_by_name(name)
        return prompt, await self._version(prompt, prompt.latest_version)

    async def list(
        self,
        *,
        cursor: str | None,
        limit: int,
        tag: str | None,
        index_status: IndexStatus | None = None,
    ) -> tuple[list[Prompt], str | None]:
        reject_nul(tag, "tag")
        return await self.repo.list(cursor=cursor, limit=limit, tag=tag, index_status=index_status)

    async def get_version(self, prompt_id: UUID, number: int) -> PromptVersion:
        """With ``version.prompt`` loaded."""
        prompt = await self.get(prompt_id)
        return await self._version(prompt, number)

    async def list_versions(
        self, prompt_id: UUID, *, cursor: str | None, limit: int
    ) -> tuple[Prompt, builtins.list[PromptVersion], str | None]:
        """Newest first; pass the returned cursor back for the next page."""
        before = below(cursor, high=MAX_VERSION + 1)  # pages continue below a version
        prompt = await self.get(prompt_id)
        rows = await self.repo.list_versions(prompt.id, before=before, limit=limit)
        if len(rows) > limit:
            rows = rows[:limit]
            return prompt, rows, below_cursor(rows[-1].number)
        return prompt, rows, None

    async def _version(self, prompt: Prompt, number: int) -> PromptVersion:
        found = await self.repo.get_version(prompt.id, number)
        if found is None:
            raise NotFoundError(
                f"version: prompt {prompt.name!r} has no version {number}",
                extra={"field": "version"},
            )
        return found

    async def _pick(self, prompt: Prompt, label: str | None, version: int | None) -> PromptVersion:
        if version is not None:
            return await self._version(prompt, version)
        if label is None:
            return await self._version(prompt, prompt.latest_version)
        number = (prompt.labels or {}).get(label)
        if number is None:
            raise NotFoundError(
                f"label: prompt {prompt.name!r} has no label {label[:60]!r}",
                extra={"field": "label"},
            )
        return await self._version(prompt, number)

    async def resolve(
        self, name: str, *, label: str | None = PRODUCTION, version: int | None = None
    ) -> PromptVersion:
        """The version to use: pinned by ``version`` (``label`` is then ignored), else the
        one ``label`` points at, else (``label=None``) the latest; ``version.prompt`` is
        loaded. NotFoundError (404) when the prompt, the label or the version is absent."""
        prompt = await self.get_by_name(name)
        return await self._pick(prompt, label, version)

    async def render_prompt(
        self,
        prompt_id: UUID,
        variables: Mapping[str, Any],
        *,
        label: str | None = None,
        version: int | None = None,
    ) -> tuple[PromptVersion, str]:
        """Render the pinned ``version``, else the one ``label`` (default production)
        points at."""
        if label is not None and version is not None:
            raise InvalidInputError("version", "give a label or a version, not both")
        prompt = await self.get(prompt_id)
        if version is None:
            label = label or PRODUCTION
        picked = await self._pick(prompt, label, version)
        return picked, render(picked.template, variables)
