"""Every table of the schema, imported by Alembic's env so autogenerate sees them all.

PostgreSQL is the source of truth. Rows that are indexed carry a ``version`` that goes up
by one on every change; it becomes Elasticsearch's external version, so a stale write
can never overwrite a newer one. Every change that must reach the index writes an
``OutboxEvent`` in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from myaiserv.db.base import Base
from myaiserv.search.kinds import EntityKind

# Where a record's current version stands with the index: written and not yet settled by
# an indexer, acknowledged by Elasticsearch, or dead-lettered (``index_error`` says why).
IndexStatus = Literal["pending", "indexed", "failed"]
INDEX_STATUSES: tuple[IndexStatus, ...] = get_args(IndexStatus)


def _now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class TenantRecord:
    """The columns every indexed record has: its tenant, and the ``version`` that goes up
    by one on each change (see ``myaiserv.db.repository``)."""

    # Listed first in each table, as before the columns moved here.
    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4, sort_order=-2)
    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), sort_order=-1
    )
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()
    # Set by writes (pending) and by the indexer when it settles *this* version (see
    # ``myaiserv.db.index_state``); a settlement of an older version changes nothing.
    index_status: Mapped[str] = mapped_column(String(16), server_default="pending")
    index_error: Mapped[str | None] = mapped_column(Text)
    index_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Tenant(Base):
    """Whoever owns data here; every record belongs to exactly one tenant."""

    __tablename__ = "tenants"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = _now_column()
    # LLM usage allowed per UTC day; None: the deployment's default (settings.quotas).
    daily_token_quota: Mapped[int | None] = mapped_column(BigInteger)
    daily_cost_quota_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 6))


class ApiKey(Base):
    """Only a hash of the key is stored; the prefix identifies it (and finds the row)."""

    __tablename__ = "api_keys"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """A person who logs in to the console. The tenant and role come from this row, as a
    key's come from its row; ``password_hash`` is argon2id, None until the one-time link
    is used. Emails are stored lower-cased and unique across tenants, so a login names
    exactly one tenant."""

    __tablename__ = "users"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | editor | admin
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now_column()
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PasswordToken(Base):
    """A one-time link to set a password (an invitation, or a reset): only its hash is
    stored; using it, or issuing a newer one, ends it."""

    __tablename__ = "password_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Document(TenantRecord, Base):
    __tablename__ = "documents"
    __table_args__ = (
        # The same content from the same source is the same document (re-ingesting a
        # folder stores nothing twice); identical text from two sources is two documents.
        UniqueConstraint("tenant_id", "source", "content_hash", postgresql_nulls_not_distinct=True),
        Index("ix_documents_tenant_created", "tenant_id", "created_at", "id"),
    )

    title: Mapped[str] = mapped_column(String(1000))
    source: Mapped[str | None] = mapped_column(String(2000))
    content_type: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(200)), server_default="{}")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    # A PDF's pages: where each begins in ``text``, page 1 first (None: not paged).
    page_starts: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))


class Prompt(TenantRecord, Base):
    """A named template; its versions are immutable, labels point at one of them."""

    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_prompts_tenant_created", "tenant_id", "created_at", "id"),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(200)), server_default="{}")
    labels: Mapped[dict[str, int]] = mapped_column(JSONB, server_default="{}")
    latest_version: Mapped[int] = mapped_column(Integer, server_default="0")

    versions: Mapped[list[PromptVersion]] = relationship(
        back_populates="prompt", order_by="PromptVersion.number", passive_deletes=True
    )


class PromptVersion(Base):
    __tablename__ = "prompt_versions"
    __table_args__ = (UniqueConstraint("prompt_id", "number"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    prompt_id: Mapped[UUID] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(Text)
    variables: Mapped[list[str]] = mapped_column(ARRAY(String(100)), server_default="{}")
    model_parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()

    prompt: Mapped[Prompt] = relationship(back_populates="versions")


class Conversation(TenantRecord, Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_tenant_created", "tenant_id", "created_at", "id"),)

    title: Mapped[str | None] = mapped_column(String(1000))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")


class Message(TenantRecord, Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation", "conversation_id", "created_at", "id"),)

    conversation_id: Mapped[UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    token_count: Mapped[int | None] = mapped_column(Integer)


class Run(TenantRecord, Base):
    """One inference call: recorded by our RAG endpoints, or posted by clients."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_tenant_created", "tenant_id", "created_at", "id"),)

    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    prompt_version_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="SET NULL")
    )
    prompt_name: Mapped[str | None] = mapped_column(String(200))
    prompt_version: Mapped[int | None] = mapped_column(Integer)
    conversation_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    input: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    total_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Numeric(12, 3, asdecimal=False))
    time_to_first_token_ms: Mapped[float | None] = mapped_column(Numeric(12, 3, asdecimal=False))
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 8))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    retrieved_chunk_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    cited_chunk_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default="{}")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The trace the call was recorded in (32 hex digits), when tracing recorded it.
    trace_id: Mapped[str | None] = mapped_column(String(32))


class OutboxEvent(Base):
    """An entity changed and its index entry must follow. Written in the same transaction
    as the change; deleted once the indexer has written it to Elasticsearch."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_available", "available_at", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[UUID] = mapped_column()
    op: Mapped[str] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()
    available_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # The write's trace (a W3C traceparent), so the indexer's work continues it.
    traceparent: Mapped[str | None] = mapped_column(String(55))


class DeadLetter(Base):
    """An index write that can never succeed (e.g. rejected by the mapping), with why."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[UUID] = mapped_column()
    op: Mapped[str] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now_column()


class IndexGeneration(Base):
    """The generation of one tenant's (or, ``*``, every tenant's) entries of an index kind:
    a fresh random value each time writes to it were settled. Cached result pages are keyed
    by it (``myaiserv.db.generations``); random rather than a counter, so a database
    restored from a backup can never bring back a value an older page was keyed by."""

    __tablename__ = "index_generations"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation: Mapped[UUID] = mapped_column(server_default=func.gen_random_uuid())


class IndexBuild(Base):
    """A concrete index being built by a reindex: indexers write to it as well as to the
    alias until the alias is swapped, so no change made during the backfill is missed."""

    __tablename__ = "index_builds"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    index_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    started_at: Mapped[datetime] = _now_column()


class IndexerHeartbeat(Base):
    """A live process draining the outbox (an indexer, or `myaiserv ingest` indexing in
    its own process), as it last said: it rewrites its row every ``indexing.heartbeat_s``
    with what it has done, and deletes it when it stops. A row older than
    ``indexing.heartbeat_ttl_s`` is a process that died. An ingest follows live ones
    instead of competing with them; `myaiserv indexer status` lists them."""

    __tablename__ = "indexer_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # indexer | ingest
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = _now_column()
    beat_at: Mapped[datetime] = _now_column()
    # Since it started: outbox rows settled, chunks written, their tokens.
    rows: Mapped[int] = mapped_column(BigInteger, server_default="0")
    chunks: Mapped[int] = mapped_column(BigInteger, server_default="0")
    tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # Over its last minute.
    chunks_per_s: Mapped[float] = mapped_column(Float, server_default="0")
    tokens_per_s: Mapped[float] = mapped_column(Float, server_default="0")


class AuditEvent(Base):
    """Who did what to whose security-relevant state: keys issued and revoked, failed
    authentications (sampled), admin actions, prompt label moves. Written in the
    transaction of the change it records, so the log and the state never disagree."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_tenant_id", "tenant_id", "id"),
        Index("ix_audit_action_id", "action", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = _now_column()
    tenant_id: Mapped[UUID | None] = mapped_column()  # None: no tenant could be named
    actor: Mapped[str] = mapped_column(String(100))  # "key:<prefix>", "cli", "anonymous"
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), server_default="success")
    target: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class ProviderSecret(Base):
    """A provider's API key, encrypted (Fernet: AES-128-CBC + HMAC-SHA256) under the
    deployment's secret keys; ``key_id`` names the key that encrypted it, so a rotation
    can tell what is left to re-encrypt."""

    __tablename__ = "provider_secrets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


# The table of each entity kind the outbox names (reindexing and restores read them).
RECORD_MODELS: dict[EntityKind, type[TenantRecord]] = {
    "documents": Document,
    "prompts": Prompt,
    "conversations": Conversation,
    "messages": Message,
    "runs": Run,
}
