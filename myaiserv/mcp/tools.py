"""The MCP tools. Each is a controller of its own: parse the arguments (the ``/v1``
schemas), authorise (the scope its HTTP route needs), call one service (the one the route
calls, built the same way) and shape the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from mcp_types import CallToolResult, TextContent, Tool, ToolAnnotations

from myaiserv.documents.controller import new_document, to_out
from myaiserv.documents.schemas import DocumentCreate
from myaiserv.documents.service import DocumentService
from myaiserv.mcp.context import Caller
from myaiserv.mcp.schemas import DocumentRef, SearchArgs, input_schema, parse
from myaiserv.rag.controller import answer_question
from myaiserv.rag.deps import provide_rag_service
from myaiserv.rag.schemas import RagAnswerRequest
from myaiserv.runs.controller import provide_run_search_service
from myaiserv.runs.schemas import RunSearchRequest
from myaiserv.search.deps import search_service


async def search(caller: Caller, args: SearchArgs) -> dict[str, Any]:
    service = search_service(caller.resources, caller.tenant_id)
    body, _ = await service.search(args.request())
    return passages(msgspec.json.decode(body))


def passages(page: dict[str, Any]) -> dict[str, Any]:
    """A search page as passages: each hit's id, kind, score, source and text."""
    shaped = []
    for hit in page["hits"]:
        fields = hit.get("fields", {})
        shaped.append(
            {
                "id": hit["id"],
                "kind": hit["kind"],
                "type": hit["type"],
                "score": hit["score"],
                **{k: fields[k] for k in ("document_id", "title", "source") if k in fields},
                "text": fields.get("text"),
                "highlights": hit.get("highlights", {}),
                "fields": {k: v for k, v in fields.items() if k not in ("text", "title")},
            }
        )
    return {"total": page["total"], "passages": shaped, "next_cursor": page.get("next_cursor")}


async def search_runs(caller: Caller, args: RunSearchRequest) -> Any:
    service = await provide_run_search_service(caller.resources, caller.principal)
    return await service.search(args)


async def get_document(caller: Caller, args: DocumentRef) -> Any:
    async with caller.unit_of_work() as session:
        service = DocumentService(session, caller.tenant_id, caller.resources.settings)
        return to_out(await service.get(args.id), text=True)


async def answer(caller: Caller, args: RagAnswerRequest) -> Any:
    service = provide_rag_service(caller.resources, caller.principal)
    return await answer_question(service, args)


async def add_document(caller: Caller, args: DocumentCreate) -> Any:
    # The document and its outbox row are written in this one transaction.
    async with caller.unit_of_work() as session:
        service = DocumentService(session, caller.tenant_id, caller.resources.settings)
        [(doc, dup)] = await service.create_many([new_document(args)])
        return to_out(doc, deduplicated=dup)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[msgspec.Struct]
    scope: str  # as the HTTP route's guard
    run: Callable[[Caller, Any], Awaitable[Any]]

    def definition(self) -> Tool:
        return Tool(
            name=self.name,
            description=self.description,
            input_schema=input_schema(self.args),
            annotations=ToolAnnotations(
                read_only_hint=self.scope == "read", destructive_hint=False
            ),
        )

    async def call(self, caller: Caller, arguments: dict[str, Any] | None) -> CallToolResult:
        caller.require(self.scope)  # before parsing, as a route's guard
        args = parse(arguments, self.args)
        result = msgspec.to_builtins(await self.run(caller, args))
        return CallToolResult(
            content=[TextContent(text=msgspec.json.encode(result).decode())],
            structured_content=result,
        )


TOOLS = {
    spec.name: spec
    for spec in [
        ToolSpec(
            "search",
            "Hybrid (BM25 + vector) search over this tenant's knowledge base. Returns "
            "passages with their ids, document ids, titles, sources and text. kinds: "
            "documents (default), prompts, conversations, runs. filters: type, tags, "
            "content_type, source, document_id, created_at/updated_at ranges, metadata. "
            "Pass next_cursor back as cursor for more.",
            SearchArgs,
            "read",
            search,
        ),
        ToolSpec(
            "search_runs",
            "Search past inference runs (as POST /v1/runs/search): words in input/output, "
            "filters (provider, model, status, prompt_name, document_id, latency_ms, "
            "cost_usd, created_at, ...), sort, and aggregations (totals, by_model, by_day: "
            "counts, error rates, tokens, cost, latency p50/p95).",
            RunSearchRequest,
            "read",
            search_runs,
        ),
        ToolSpec(
            "get_document",
            "A document by id, with its full text, title, source, tags, metadata and index state.",
            DocumentRef,
            "read",
            get_document,
        ),
        ToolSpec(
            "answer",
            "Answer a question from the knowledge base (retrieval-augmented generation), "
            "citing its sources as [n]: the answer, its citations and passages, and the id "
            "of the run it recorded. Needs the write scope, as POST /v1/rag/answer.",
            RagAnswerRequest,
            "write",
            answer,
        ),
        ToolSpec(
            "add_document",
            "Store a document (plain text, Markdown or HTML) in the knowledge base; it is "
            "searchable once indexed, seconds later. Content already stored is not stored "
            "twice (deduplicated: true). Needs the write scope.",
            DocumentCreate,
            "write",
            add_document,
        ),
    ]
}
