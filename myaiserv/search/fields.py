"""Which fields each kind of entry has, and what search does with them: text fields for
BM25 and highlights, the fields returned with every hit, and which filters and facets
apply to which kinds."""

from __future__ import annotations

from myaiserv.search.kinds import KINDS, Kind

# Natural text fields per kind: BM25 without app-side stemming, and highlights.
TEXT_FIELDS = {
    "documents": ["title^2", "heading^1.5", "text"],
    "prompts": ["name^2", "description", "template"],
    "conversations": ["title", "content"],
    "runs": ["input", "output", "error"],
}
HIGHLIGHT_FIELDS = {
    "documents": ["text", "title"],
    "prompts": ["template", "description"],
    "conversations": ["content", "title"],
    "runs": ["input", "output"],
}
# Returned with every hit; anything else (full texts, vectors) only through `fields`.
DEFAULT_FIELDS = {
    "documents": [
        "document_id", "chunk_id", "position", "title", "heading", "page_start", "page_end",
        "source", "content_type", "tags", "metadata", "created_at", "updated_at",
    ],
    "prompts": [
        "prompt_id", "name", "description", "tags", "labels", "indexed_version", "variables",
        "created_at", "updated_at",
    ],
    "conversations": [
        "conversation_id", "message_id", "title", "role", "created_at", "updated_at",
    ],
    "runs": [
        "run_id", "provider", "model", "status", "prompt_name", "prompt_version",
        "conversation_id", "latency_ms", "cost_usd", "total_tokens", "created_at",
    ],
}  # fmt: skip
HIDDEN_FIELDS = {"tenant_id", "stems", "meta", "kind", "type", "version"}

# Filters and facets: the kinds whose entries have the field.
FILTER_KINDS: dict[str, set[Kind]] = {
    "type": set(KINDS),
    "tags": {"documents", "prompts"},
    "content_type": {"documents"},
    "source": {"documents"},
    "document_id": {"documents", "runs"},  # runs: lineage (documents they retrieved)
    "conversation_id": {"conversations", "runs"},
    "role": {"conversations"},
    "provider": {"runs"},
    "model": {"runs"},
    "status": {"runs"},
    "created_at": set(KINDS),
    "updated_at": set(KINDS),
    "metadata": {"documents", "conversations", "runs"},
}
FIELD_OF = {"document_id": "document_ids"}  # runs store lineage in document_ids too
FACETS = {
    "kind": "kind",
    "type": "type",
    "tags": "tags",
    "content_type": "content_type",
    "source": "source",
    "role": "role",
    "provider": "provider",
    "model": "model",
    "status": "status",
    "prompt": "name.raw",
}
FACET_KINDS: dict[str, set[Kind]] = {**FILTER_KINDS, "kind": set(KINDS), "prompt": {"prompts"}}
MAX_FACET_BUCKETS = 50
