"""What is indexed: the index kinds clients search, and the entity kinds of the outbox
that feed them. Literal types, so every kind spelled out in code is checked by mypy."""

from __future__ import annotations

from typing import Literal, get_args

Kind = Literal["documents", "prompts", "conversations", "runs"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# Outbox rows name the entity that changed; messages live in their conversation's index.
EntityKind = Literal["documents", "prompts", "conversations", "messages", "runs"]
ENTITY_KINDS: tuple[EntityKind, ...] = get_args(EntityKind)
INDEX_OF: dict[EntityKind, Kind] = {
    "documents": "documents",
    "prompts": "prompts",
    "conversations": "conversations",
    "messages": "conversations",
    "runs": "runs",
}


def as_kind(value: str) -> Kind | None:
    """``value`` as an index kind, or None when it names none."""
    return value if value in KINDS else None


def stored_kind(value: str) -> Kind:
    """An index kind we stored ourselves (a reindex's row): anything else is a bug."""
    if value not in KINDS:
        raise ValueError(f"unknown index kind {value!r}")
    return value


def stored_entity_kind(value: str) -> EntityKind:
    """An outbox row's kind (our own writes): anything else is a bug."""
    if value not in ENTITY_KINDS:
        raise ValueError(f"unknown entity kind {value!r}")
    return value
