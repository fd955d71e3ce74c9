"""The playground: ask the knowledge base a question, as a conversation.

The answer comes from the same ``RagService`` the API's ``/v1/chat/completions`` calls:
streamed as that route streams it (``wire.CompletionEnvelope``: OpenAI's chunks, then
citations, run id and conversation id in a chunk of their own) to ``playground.js``, or,
without JavaScript, complete on a page of its own. Asking needs the ``write`` scope, as
the API's chat routes do; reading a conversation needs ``read``, as ``/v1/conversations``.

A first question starts a conversation (``ConversationService``), committed before the
answer is generated, so the run and the turn are recorded in it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.auth.middleware import requires
from myaiserv.auth.principal import Principal
from myaiserv.console.pages import page
from myaiserv.conversations.service import ConversationService
from myaiserv.errors import AppError
from myaiserv.kit.validation import InvalidInputError
from myaiserv.llm.base import GenerationParams
from myaiserv.prompts.service import PromptService
from myaiserv.rag import wire
from myaiserv.rag.deps import provide_rag_service
from myaiserv.rag.request import ChatRequest
from myaiserv.rag.result import Answer
from myaiserv.rag.schemas import ChatMessageIn, PromptOptions, RetrievalOptions
from myaiserv.rag.service import RagService
from myaiserv.resources import Resources
from myaiserv.search.schemas import Filters

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
MODES = ("hybrid", "bm25", "vector")
RETRIEVAL = {"": None, "on": True, "off": False}
HISTORY_MESSAGES = 100  # the most earlier messages shown
PROMPTS_LISTED = 100
TITLE_CHARS = 200  # a new conversation's title: the start of its first question
CITATION = re.compile(r"\[(\d+)\]")
# The service's names for what was wrong, as the form's fields.
FIELDS = {
    "retrieval.k": "k",
    "retrieval.mode": "mode",
    "retrieval.enabled": "retrieval",
    "retrieval.filters": "tags",
    "model": "model",
    "conversation_id": "conversation",
    "name": "prompt",
    "label": "label",
}


@dataclass
class AskForm:
    """The playground's form (every field optional but the question)."""

    question: str = ""
    model: str = ""
    prompt: str = ""
    label: str = ""
    retrieval: str = ""  # "": the model's default, "on", "off"
    mode: str = "hybrid"
    k: str = ""
    tags: str = ""  # comma-separated; every one must be on the document
    conversation: str = ""


@dataclass(frozen=True)
class Source:
    """A cited passage, as shown under the answer."""

    n: int
    chunk_id: str
    document_id: str
    title: str
    text: str

    @property
    def href(self) -> str:
        return f"/console/chunks/{self.chunk_id}"


@dataclass(frozen=True)
class Segment:
    """A piece of an answer's text: plain, or a ``[n]`` marker citing ``source``."""

    text: str
    source: Source | None = None


@dataclass(frozen=True)
class Reply:
    """An answer as the page shows it."""

    question: str
    segments: list[Segment]
    sources: list[Source]
    run_id: str | None


def retrieval_options(form: AskForm) -> RetrievalOptions:
    """The ``retrieval`` extension the API takes, from the form (the service checks the
    range of ``k``)."""
    if form.mode not in MODES:
        raise InvalidInputError("retrieval.mode", f"must be one of {', '.join(MODES)}")
    if form.retrieval not in RETRIEVAL:
        raise InvalidInputError("retrieval.enabled", "must be the default, on or off")
    k = None
    if form.k.strip():
        try:
            k = int(form.k)
        except ValueError:
            raise InvalidInputError("retrieval.k", "must be a whole number") from None
    tags = [t.strip() for t in form.tags.split(",") if t.strip()]
    return RetrievalOptions(
        enabled=RETRIEVAL[form.retrieval],
        mode=form.mode,  # type: ignore[arg-type]  # one of MODES, checked above
        k=k,
        filters=Filters(tags=tags) if tags else None,
    )


def prompt_options(form: AskForm) -> PromptOptions | None:
    name, label = form.prompt.strip() or None, form.label.strip() or None
    if name is None and label is None:
        return None  # the service's default system prompt
    return PromptOptions(name=name, label=label)


def conversation_of(form: AskForm) -> str | None:
    return form.conversation.strip() or None


def sources_of(citations: list[dict[str, Any]]) -> list[Source]:
    seen: dict[int, Source] = {}
    for c in citations:
        n = int(c["index"])
        seen.setdefault(
            n,
            Source(
                n=n,
                chunk_id=str(c["chunk_id"]),
                document_id=str(c["document_id"]),
                title=str(c.get("title") or c.get("source") or "Untitled document"),
                text=str(c.get("text") or ""),
            ),
        )
    return [seen[n] for n in sorted(seen)]


def segments_of(text: str, sources: list[Source]) -> list[Segment]:
    """The answer split at its ``[n]`` markers; a marker of a cited passage links to it
    (the template escapes every piece)."""
    by_n = {s.n: s for s in sources}
    out: list[Segment] = []
    at = 0
    for match in CITATION.finditer(text):
        source = by_n.get(int(match.group(1)))
        if source is None:
            continue
        if match.start() > at:
            out.append(Segment(text[at : match.start()]))
        out.append(Segment(match.group(0), source))
        at = match.end()
    if at < len(text):
        out.append(Segment(text[at:]))
    return out


def reply_of(question: str, answer: Answer) -> Reply:
    sources = sources_of(answer.citations)
    return Reply(
        question=question,
        segments=segments_of(answer.text, sources),
        sources=sources,
        run_id=str(answer.run_id) if answer.run_id else None,
    )


def field_of(exc: AppError) -> str:
    """The form field an error is about ("" when none is)."""
    if isinstance(exc, InvalidInputError):
        name = exc.field
    else:
        name = str((exc.extra or {}).get("field") or "")
    if name.startswith("messages"):
        return "question"
    return FIELDS.get(name, "")


async def prepare(
    service: RagService, resources: Resources, tenant_id: UUID, form: AskForm
) -> ChatRequest:
    """The chat request, checked by the service as the API's would be; a first question
    then gets a conversation of its own (committed, so the answer is recorded in it)."""
    conversation = conversation_of(form)
    request = await service.prepare(
        model=form.model.strip() or None,
        messages=[ChatMessageIn(role="user", content=form.question)],
        params=GenerationParams(),
        retrieval=retrieval_options(form),
        prompt=prompt_options(form),
        conversation_id=conversation,
    )
    if conversation is not None:
        return request
    async with resources.sessionmaker() as session, session.begin():
        started, _ = await ConversationService(session, tenant_id).create(
            title=form.question.strip()[:TITLE_CHARS] or None
        )
    # A new conversation has no history: the prepared request holds for it as it is.
    return dataclasses.replace(request, conversation_id=started.id)


class PlaygroundController(Controller):
    path = "/playground"
    include_in_schema = False
    dependencies = {"service": Provide(provide_rag_service, sync_to_thread=False)}  # noqa: RUF012

    @get("/", guards=[requires("read")])
    async def playground(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        resources: Resources,
        principal: Principal,
        conversation: UUID | None = None,
    ) -> Template:
        """The form, and the conversation's turns when one is reopened."""
        form = AskForm(conversation=str(conversation) if conversation else "")
        return await self._page(request, db_session, resources, principal, form)

    @post("/", guards=[requires("write")], status_code=200)
    async def ask(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        resources: Resources,
        principal: Principal,
        service: NamedDependency[RagService],
        data: Annotated[AskForm, FORM],
    ) -> Template:
        """Without JavaScript: the whole answer on a page (errors next to the form)."""
        # The earlier turns, read before this one is recorded (it is shown with its sources).
        context = await self._context(db_session, resources, principal, data)
        try:
            chat = await prepare(service, resources, principal.tenant_id, data)
            answer = await service.complete(chat)
        except AppError as exc:
            return self._render(
                request,
                data,
                context,
                status_code=400 if isinstance(exc, InvalidInputError) else exc.status_code,
                headers=exc.headers,
                error=exc.detail,
                error_field=field_of(exc),
            )
        form = dataclasses.replace(data, question="", conversation=str(chat.conversation_id))
        return self._render(request, form, context, reply=reply_of(data.question, answer))

    @post("/answer", guards=[requires("write")], status_code=200)
    async def answer(
        self,
        resources: Resources,
        principal: Principal,
        service: NamedDependency[RagService],
        data: Annotated[AskForm, FORM],
    ) -> Stream:
        """The answer as server-sent events, exactly as ``/v1/chat/completions`` streams
        it; a refusal before the stream starts is a problem+json (the script asks for
        JSON)."""
        chat = await prepare(service, resources, principal.tenant_id, data)
        return Stream(
            wire.CompletionEnvelope(chat).events(service.stream(chat)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    async def _context(
        self,
        db_session: AsyncSession,
        resources: Resources,
        principal: Principal,
        form: AskForm,
    ) -> dict[str, Any]:
        """What the page shows besides the answer: the models, the prompts and their
        labels, the conversation so far (404 when the tenant has no such conversation)."""
        tenant = principal.tenant_id
        prompts, _ = await PromptService(db_session, tenant).list(
            cursor=None, limit=PROMPTS_LISTED, tag=None
        )
        labels = sorted({label for p in prompts for label in p.labels or {}} | {"production"})
        history: list[Any] = []
        conversation = conversation_of(form)
        if conversation is not None:
            try:
                conversation_id = UUID(conversation)
            except ValueError:
                raise InvalidInputError("conversation_id", "must be a UUID") from None
            newest_first = await ConversationService(db_session, tenant).history(
                conversation_id, limit=HISTORY_MESSAGES
            )
            history = list(reversed(newest_first))
        llm = resources.settings.llm
        return {
            "models": resources.llm.model_names(),
            "default_model": llm.default_model,
            "default_k": llm.retrieval_k,
            "prompts": [p.name for p in prompts],
            "labels": labels,
            "history": history,
            "history_cut": len(history) >= HISTORY_MESSAGES,
        }

    async def _page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        resources: Resources,
        principal: Principal,
        form: AskForm,
    ) -> Template:
        context = await self._context(db_session, resources, principal, form)
        return self._render(request, form, context)

    def _render(
        self,
        request: Request[Any, Any, Any],
        form: AskForm,
        context: dict[str, Any],
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        reply: Reply | None = None,
        error: str = "",
        error_field: str = "",
    ) -> Template:
        return page(
            request,
            "playground/index.html",
            section="playground",
            title="Playground",
            status_code=status_code,
            headers=headers,
            form=form,
            modes=MODES,
            reply=reply,
            error=error,
            errors={error_field: error} if error and error_field else {},
            **context,
        )
