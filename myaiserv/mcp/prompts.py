"""The tenant's versioned prompts as MCP prompts (read scope, as ``/v1/prompts``).

A prompt is listed under its name, its arguments the variables of the version its
``production`` label points at (else of its latest). Getting it renders that version, or
the one named by the optional arguments ``@label`` or ``@version`` (names no template
variable can have), as one user message."""

from __future__ import annotations

from mcp_types import (
    GetPromptResult,
    ListPromptsResult,
    Prompt,
    PromptArgument,
    PromptMessage,
    TextContent,
)
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.audit.log import actor_of
from myaiserv.db.models import Prompt as PromptRow
from myaiserv.kit.validation import InvalidInputError
from myaiserv.mcp.context import Caller
from myaiserv.prompts.service import PRODUCTION, PromptService

LABEL_ARG = "@label"
VERSION_ARG = "@version"
PAGE = 50
CHOOSERS = [
    PromptArgument(
        name=LABEL_ARG,
        description=f"the label whose version to render (default {PRODUCTION})",
        required=False,
    ),
    PromptArgument(
        name=VERSION_ARG, description="a version number to render instead", required=False
    ),
]


def _service(caller: Caller, session: AsyncSession) -> PromptService:
    return PromptService(
        session,
        caller.tenant_id,
        actor=actor_of(caller.principal),
        ip=caller.ip,
    )


def _describe(prompt: PromptRow, number: int) -> str:
    labels = ", ".join(f"{k} -> v{v}" for k, v in sorted((prompt.labels or {}).items()))
    head = prompt.description or prompt.name
    return f"{head} (version {number}; latest {prompt.latest_version}; labels: {labels or 'none'})"


async def list_prompts(caller: Caller, cursor: str | None) -> ListPromptsResult:
    caller.require("read")
    listed = []
    async with caller.unit_of_work() as session:
        service = _service(caller, session)
        rows, next_cursor = await service.list(cursor=cursor, limit=PAGE, tag=None)
        for row in rows:
            version = await service.resolve(row.name, label=default_label(row))
            arguments = [PromptArgument(name=v, required=True) for v in version.variables]
            listed.append(
                Prompt(
                    name=row.name,
                    description=_describe(row, version.number),
                    arguments=arguments + CHOOSERS,
                )
            )
    return ListPromptsResult(prompts=listed, next_cursor=next_cursor)


def default_label(prompt: PromptRow) -> str | None:
    """The version a prompt is listed and rendered at unless the caller picks one: its
    ``production`` label's, else (no such label) its latest."""
    return PRODUCTION if PRODUCTION in (prompt.labels or {}) else None


def _version(arguments: dict[str, str]) -> int | None:
    raw = arguments.pop(VERSION_ARG, None)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise InvalidInputError(VERSION_ARG, "must be a version number")
    return int(raw)


async def get_prompt(
    caller: Caller, name: str, arguments: dict[str, str] | None
) -> GetPromptResult:
    caller.require("read")
    values = dict(arguments or {})
    label = values.pop(LABEL_ARG, None)
    version = _version(values)
    if label is not None and version is not None:
        raise InvalidInputError(VERSION_ARG, f"give {LABEL_ARG} or {VERSION_ARG}, not both")
    async with caller.unit_of_work() as session:
        service = _service(caller, session)
        if label is None and version is None:
            label = default_label(await service.get_by_name(name))
        picked = await service.resolve(name, label=label, version=version)
        text = service.render(picked.template, values)
        description = _describe(picked.prompt, picked.number)
    return GetPromptResult(
        description=description,
        messages=[PromptMessage(role="user", content=TextContent(text=text))],
    )
