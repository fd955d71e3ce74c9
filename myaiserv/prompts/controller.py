"""/v1/prompts: versioned prompt templates, their labels, and rendering."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit import log as audit
from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.db.models import IndexStatus, Prompt, PromptVersion
from myaiserv.kit.deps import client_ip
from myaiserv.kit.index_state import index_state
from myaiserv.kit.validation import changes_of
from myaiserv.prompts.schemas import (
    MAX_VERSION,
    LabelSet,
    PromptCreate,
    PromptOut,
    PromptPage,
    PromptUpdate,
    PromptVersionOut,
    PromptVersionPage,
    RenderOut,
    RenderRequest,
    VersionCreate,
)
from myaiserv.prompts.service import NewPrompt, NewVersion, PromptService
from myaiserv.resources import Resources

Number = Annotated[int, Parameter(ge=1, le=MAX_VERSION)]


def version_out(version: PromptVersion, labels: dict[str, int]) -> PromptVersionOut:
    return PromptVersionOut(
        id=version.id,
        prompt_id=version.prompt_id,
        number=version.number,
        template=version.template,
        variables=list(version.variables or []),
        model_parameters=dict(version.model_parameters or {}),
        comment=version.comment,
        labels=sorted(name for name, n in labels.items() if n == version.number),
        created_at=version.created_at,
    )


def to_out(prompt: Prompt, latest: PromptVersion | None = None) -> PromptOut:
    labels = dict(prompt.labels or {})
    return PromptOut(
        id=prompt.id,
        name=prompt.name,
        description=prompt.description,
        tags=list(prompt.tags or []),
        labels=labels,
        latest_version=prompt.latest_version,
        version=prompt.version,
        created_at=prompt.created_at,
        updated_at=prompt.updated_at,
        latest=version_out(latest, labels) if latest is not None else None,
        **index_state(prompt),
    )


def new_version(data: PromptCreate | VersionCreate) -> NewVersion:
    return NewVersion(
        template=data.template,
        variables=data.variables,
        model_parameters=data.model_parameters,
        comment=data.comment,
        labels=data.labels,
    )


async def provide_prompt_service(
    db_session: AsyncSession, principal: Principal, request: Request[Any, Any, Any]
) -> PromptService:
    return PromptService(
        db_session,
        principal.tenant_id,
        actor=audit.actor_of(principal),
        ip=client_ip(request),
    )


class PromptController(Controller):
    path = "/v1/prompts"
    tags = ["prompts"]  # noqa: RUF012
    dependencies = {"service": Provide(provide_prompt_service)}  # noqa: RUF012

    @post("/", guards=[requires("write")], status_code=201)
    async def create(
        self,
        data: PromptCreate,
        service: NamedDependency[PromptService],
    ) -> PromptOut:
        """Create a prompt and its version 1. ``{name}`` placeholders in the template;
        ``{{`` and ``}}`` for literal braces. ``variables`` is inferred when omitted;
        ``labels`` (default ``["production"]``) point at version 1. 409 if the name is
        taken."""
        prompt, version = await service.create(
            NewPrompt(name=data.name, description=data.description, tags=data.tags),
            new_version(data),
        )
        return to_out(prompt, version)

    @get("/", guards=[requires("read")])
    async def list_prompts(
        self,
        service: NamedDependency[PromptService],
        resources: NamedDependency[Resources],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: str | None = None,
        tag: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> PromptPage:
        """Newest first (only those in ``index_status``, if given); pass ``next_cursor``
        back as ``cursor`` for the next page."""
        limit = min(limit, resources.settings.limits.max_page_size)
        rows, next_cursor = await service.list(
            cursor=cursor, limit=limit, tag=tag, index_status=index_status
        )
        return PromptPage(items=[to_out(p) for p in rows], next_cursor=next_cursor)

    @get("/{prompt_id:uuid}", guards=[requires("read")])
    async def get_prompt(
        self,
        prompt_id: UUID,
        service: NamedDependency[PromptService],
    ) -> PromptOut:
        """The prompt, its labels and its latest version."""
        return to_out(*await service.get_detail(prompt_id))

    @get("/by-name/{name:str}", guards=[requires("read")])
    async def get_by_name(
        self,
        name: str,
        service: NamedDependency[PromptService],
    ) -> PromptOut:
        """The prompt, its labels and its latest version, found by name."""
        return to_out(*await service.get_detail_by_name(name))

    @patch("/{prompt_id:uuid}", guards=[requires("write")])
    async def update_prompt(
        self,
        prompt_id: UUID,
        data: PromptUpdate,
        service: NamedDependency[PromptService],
    ) -> PromptOut:
        """Change the description or tags; templates change through new versions."""
        changes = changes_of(data)
        return to_out(await service.update(prompt_id, changes))

    @delete("/{prompt_id:uuid}", guards=[requires("write")])
    async def delete_prompt(
        self,
        prompt_id: UUID,
        service: NamedDependency[PromptService],
    ) -> None:
        """Delete the prompt with all its versions."""
        await service.delete(prompt_id)

    @post("/{prompt_id:uuid}/versions", guards=[requires("write")], status_code=201)
    async def create_version(
        self,
        prompt_id: UUID,
        data: VersionCreate,
        service: NamedDependency[PromptService],
    ) -> PromptVersionOut:
        """Add version ``latest + 1``; the ``labels`` listed move to it."""
        prompt, version = await service.add_version(prompt_id, new_version(data))
        return version_out(version, prompt.labels or {})

    @get("/{prompt_id:uuid}/versions", guards=[requires("read")])
    async def list_versions(
        self,
        prompt_id: UUID,
        service: NamedDependency[PromptService],
        resources: NamedDependency[Resources],
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 50,
        cursor: str | None = None,
    ) -> PromptVersionPage:
        """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        limit = min(limit, resources.settings.limits.max_page_size)
        prompt, rows, next_cursor = await service.list_versions(
            prompt_id, cursor=cursor, limit=limit
        )
        labels = prompt.labels or {}
        return PromptVersionPage(
            items=[version_out(v, labels) for v in rows], next_cursor=next_cursor
        )

    @get("/{prompt_id:uuid}/versions/{number:int}", guards=[requires("read")])
    async def get_version(
        self,
        prompt_id: UUID,
        number: Number,
        service: NamedDependency[PromptService],
    ) -> PromptVersionOut:
        version = await service.get_version(prompt_id, number)
        return version_out(version, version.prompt.labels or {})

    @put("/{prompt_id:uuid}/labels/{label:str}", guards=[requires("write")])
    async def set_label(
        self,
        prompt_id: UUID,
        label: str,
        data: LabelSet,
        service: NamedDependency[PromptService],
    ) -> PromptOut:
        """Point ``label`` at ``version`` (creating the label, or moving it)."""
        return to_out(await service.set_label(prompt_id, label, data.version))

    @delete("/{prompt_id:uuid}/labels/{label:str}", guards=[requires("write")])
    async def remove_label(
        self,
        prompt_id: UUID,
        label: str,
        service: NamedDependency[PromptService],
    ) -> None:
        await service.remove_label(prompt_id, label)

    @post("/{prompt_id:uuid}/render", guards=[requires("read")], status_code=200)
    async def render(
        self,
        prompt_id: UUID,
        data: RenderRequest,
        service: NamedDependency[PromptService],
    ) -> RenderOut:
        """Fill the template of the version ``label`` (default ``production``) points at,
        or of the pinned ``version``. Every variable must be given (strings, numbers or
        booleans), and no other."""
        version, text = await service.render_prompt(
            prompt_id, data.variables, label=data.label, version=data.version
        )
        return RenderOut(
            text=text, prompt_id=version.prompt_id, name=version.prompt.name, version=version.number
        )
