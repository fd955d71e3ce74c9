"""The console's Prompts pages: the tenant's prompts, a prompt's versions with a diff
between any two, its labels (moved with one click, audited by the service), a render
preview, and forms to create a prompt or a version. Every read and write goes through
``PromptService``, the API's own, so the pages validate, isolate and audit as /v1/prompts
does; this module shapes what the templates show (``prompt_forms`` reads the forms)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter, QueryParameter
from litestar.response import Redirect, Response, Template

from myaiserv.auth.middleware import requires
from myaiserv.console.auth import FORM
from myaiserv.console.pages import page
from myaiserv.console.prompt_forms import (
    Errors,
    FormError,
    LabelForm,
    PromptForm,
    VersionForm,
    form_text,
    parse_prompt,
    parse_version,
    service_errors,
    version_number,
)
from myaiserv.db.models import Prompt, PromptVersion
from myaiserv.errors import ConflictError, NotFoundError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.prompts.controller import new_version, provide_prompt_service, version_out
from myaiserv.prompts.schemas import MAX_VERSION
from myaiserv.prompts.service import PRODUCTION, NewPrompt, PromptService

PAGE_SIZE = 20  # prompts, and versions of a prompt, per page
VARIABLE_FIELD = "variables."  # the render form's inputs: ``variables.<name>``
Number = Annotated[int | None, Parameter(ge=1, le=MAX_VERSION)]

# -- the diff -------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    op: Literal["same", "ins", "del"]
    text: str


def line_diff(old: str, new: str) -> list[DiffLine]:
    """Every line of ``old`` and ``new`` in order, each kept, deleted or inserted (a
    changed line is its old line deleted, then its new one inserted). Plain text: the
    template escapes it."""
    before, after = old.splitlines(), new.splitlines()
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            lines.extend(DiffLine("same", text) for text in before[i1:i2])
            continue
        lines.extend(DiffLine("del", text) for text in before[i1:i2])
        lines.extend(DiffLine("ins", text) for text in after[j1:j2])
    return lines


@dataclass(frozen=True)
class Diff:
    old: int
    new: int
    lines: list[DiffLine]

    @property
    def changed(self) -> bool:
        return any(line.op != "same" for line in self.lines)


# -- what the detail page shows -------------------------------------------------------


@dataclass
class Preview:
    """The render form's state: the version, the values typed, and the outcome."""

    version: PromptVersion
    values: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    errors: Errors = field(default_factory=dict)


def _href(name: str, **query: Any) -> str:
    params = {k: v for k, v in query.items() if v is not None}
    base = f"/console/prompts/{quote(name, safe='')}"
    return f"{base}?{urlencode(params)}" if params else base


class ConsolePromptController(Controller):
    path = "/prompts"
    include_in_schema = False
    dependencies = {"service": Provide(provide_prompt_service)}  # noqa: RUF012

    # -- the list ---------------------------------------------------------------------

    async def _list_page(
        self,
        request: Request[Any, Any, Any],
        service: PromptService,
        *,
        cursor: str | None,
        form: PromptForm | None = None,
        errors: Errors | None = None,
        status_code: int = 200,
    ) -> Template:
        prompts, next_cursor = await service.list(cursor=cursor, limit=PAGE_SIZE, tag=None)
        return page(
            request,
            "prompts/list.html",
            section="prompts",
            title="Prompts",
            status_code=status_code,
            prompts=prompts,
            next_url=f"/console/prompts?{urlencode({'cursor': next_cursor})}"
            if next_cursor
            else None,
            first_url="/console/prompts" if cursor else None,
            form=form or PromptForm(labels=PRODUCTION),
            errors=errors or {},
        )

    @get("/", guards=[requires("read")])
    async def list_prompts(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[PromptService],
        cursor: str | None = None,
    ) -> Template:
        """The tenant's prompts, newest first, paged with the API's cursors."""
        return await self._list_page(request, service, cursor=cursor)

    @post("/", guards=[requires("write")], status_code=303)
    async def create_prompt(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[PromptService],
        data: Annotated[PromptForm, FORM],
    ) -> Response[Any]:
        """Create a prompt and its version 1, as POST /v1/prompts does."""
        try:
            parsed = parse_prompt(data)
            prompt, _ = await service.create(
                NewPrompt(name=parsed.name, description=parsed.description, tags=parsed.tags),
                new_version(parsed),
            )
        except FormError as exc:
            errors = exc.errors
        except (InvalidInputError, ConflictError) as exc:
            errors = service_errors(exc)
        else:
            return Redirect(_href(prompt.name, done="created"), status_code=303)
        return await self._list_page(
            request, service, cursor=None, form=data, errors=errors, status_code=400
        )

    # -- one prompt -------------------------------------------------------------------

    async def _detail_page(
        self,
        request: Request[Any, Any, Any],
        service: PromptService,
        prompt: Prompt,
        *,
        cursor: str | None = None,
        old: int | None = None,
        new: int | None = None,
        preview_version: int | None = None,
        preview: Preview | None = None,
        notice: str = "",
        forms: dict[str, Any] | None = None,
        errors: dict[str, Errors] | None = None,
        status_code: int = 200,
    ) -> Template:
        _, versions, next_cursor = await service.list_versions(
            prompt.id, cursor=cursor, limit=PAGE_SIZE
        )
        labels = dict(prompt.labels or {})
        latest = prompt.latest_version
        if old is None and new is None and latest >= 2:
            old, new = latest - 1, latest
        diff, diff_error = None, ""
        if old is not None or new is not None:
            old, new = old or max(1, (new or latest) - 1), new or latest
            try:
                before = await service.get_version(prompt.id, old)
                after = await service.get_version(prompt.id, new)
                diff = Diff(old, new, line_diff(before.template, after.template))
            except NotFoundError as exc:
                diff_error = exc.detail.removeprefix("version: ")
        if preview is None:
            number = preview_version or labels.get(PRODUCTION) or latest
            preview = Preview(await service.get_version(prompt.id, number))
        forms = forms or {}
        return page(
            request,
            "prompts/detail.html",
            section="prompts",
            title=f"Prompt {prompt.name}",
            status_code=status_code,
            prompt=prompt,
            labels=sorted(labels.items()),
            versions=[(v, version_out(v, labels)) for v in versions],
            next_url=_href(prompt.name, cursor=next_cursor) if next_cursor else None,
            first_url=_href(prompt.name) if cursor else None,
            href=lambda **q: _href(prompt.name, **q),
            base=_href(prompt.name),
            diff=diff,
            diff_error=diff_error,
            old=old,
            new=new,
            preview=preview,
            production=PRODUCTION,
            notice=notice,
            version_form=forms.get("version") or VersionForm(),
            label_form=forms.get("label") or LabelForm(label=PRODUCTION),
            errors=errors or {},
        )

    @get("/{name:str}", guards=[requires("read")])
    async def prompt_page(
        self,
        request: Request[Any, Any, Any],
        name: str,
        service: NamedDependency[PromptService],
        cursor: str | None = None,
        old: Annotated[int | None, QueryParameter(name="from", ge=1, le=MAX_VERSION)] = None,
        new: Annotated[int | None, QueryParameter(name="to", ge=1, le=MAX_VERSION)] = None,
        version: Number = None,
        done: str = "",
        moved: str = "",
    ) -> Template:
        """A prompt's versions, a diff (``?from=&to=``), its labels and a render preview
        (of ``?version=``, else production's, else the latest)."""
        prompt = await service.get_by_name(name)
        notice = ""
        if done == "created":
            notice = f"Prompt {prompt.name} created."
        elif done == "version":
            notice = f"Version {prompt.latest_version} added."
        elif moved in (prompt.labels or {}):
            notice = f"Label {moved} now points at version {prompt.labels[moved]}."
        return await self._detail_page(
            request,
            service,
            prompt,
            cursor=cursor,
            old=old,
            new=new,
            preview_version=version,
            notice=notice,
        )

    @post("/{name:str}/versions", guards=[requires("write")], status_code=303)
    async def add_version(
        self,
        request: Request[Any, Any, Any],
        name: str,
        service: NamedDependency[PromptService],
        data: Annotated[VersionForm, FORM],
    ) -> Response[Any]:
        """A new version, as POST /v1/prompts/{id}/versions does."""
        prompt = await service.get_by_name(name)
        try:
            await service.add_version(prompt.id, new_version(parse_version(data)))
        except FormError as exc:
            errors = exc.errors
        except InvalidInputError as exc:
            errors = service_errors(exc)
        else:
            return Redirect(_href(prompt.name, done="version"), status_code=303)
        return await self._detail_page(
            request,
            service,
            prompt,
            forms={"version": data},
            errors={"version": errors},
            status_code=400,
        )

    @post("/{name:str}/labels", guards=[requires("write")], status_code=303)
    async def set_label(
        self,
        request: Request[Any, Any, Any],
        name: str,
        service: NamedDependency[PromptService],
        data: Annotated[LabelForm, FORM],
    ) -> Response[Any]:
        """Point a label at a version (created if new), as PUT /v1/prompts/{id}/labels/
        {label} does; the service writes the move to the audit log."""
        prompt = await service.get_by_name(name)
        label = data.label.strip()
        try:
            await service.set_label(prompt.id, label, version_number(data.version))
        except FormError as exc:
            errors = exc.errors
        except InvalidInputError as exc:
            errors = service_errors(exc)
        except NotFoundError as exc:
            if exc.extra.get("field") != "version":
                raise
            errors = {"version": f"this prompt has no version {data.version.strip()}"}
        else:
            return Redirect(_href(prompt.name, moved=label) + "#labels", status_code=303)
        return await self._detail_page(
            request,
            service,
            prompt,
            forms={"label": data},
            errors={"label": errors},
            status_code=400,
        )

    @post("/{name:str}/render", guards=[requires("read")], status_code=200)
    async def render(
        self,
        request: Request[Any, Any, Any],
        name: str,
        service: NamedDependency[PromptService],
    ) -> Template:
        """Render a version with the variables typed, as POST /v1/prompts/{id}/render
        does. A blank field is a missing variable: the error names it (400)."""
        prompt = await service.get_by_name(name)
        form = await request.form()
        try:
            number = version_number(str(form.get("version", "")))
        except FormError:
            number = prompt.latest_version
        version = await service.get_version(prompt.id, number)
        values = {
            key.removeprefix(VARIABLE_FIELD): str(value)
            for key, value in form.items()
            if key.startswith(VARIABLE_FIELD)
        }
        variables = {key: form_text(value) for key, value in values.items() if value != ""}
        preview = Preview(version, values)
        try:
            _, preview.text = await service.render_prompt(
                prompt.id, variables, version=version.number
            )
        except InvalidInputError as exc:
            preview.errors = service_errors(exc)
        return await self._detail_page(
            request,
            service,
            prompt,
            preview=preview,
            status_code=400 if preview.errors else 200,
        )
