"""security: audit log, encrypted provider secrets, per-tenant daily LLM quotas

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), server_default="success", nullable=False),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_tenant_id", "audit_events", ["tenant_id", "id"])
    op.create_index("ix_audit_action_id", "audit_events", ["action", "id"])
    op.create_table(
        "provider_secrets",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_provider_secrets")),
    )
    op.add_column("tenants", sa.Column("daily_token_quota", sa.BigInteger(), nullable=True))
    op.add_column("tenants", sa.Column("daily_cost_quota_usd", sa.Numeric(14, 6), nullable=True))


def downgrade() -> None:
    op.drop_column("tenants", "daily_cost_quota_usd")
    op.drop_column("tenants", "daily_token_quota")
    op.drop_table("provider_secrets")
    op.drop_index("ix_audit_action_id", table_name="audit_events")
    op.drop_index("ix_audit_tenant_id", table_name="audit_events")
    op.drop_table("audit_events")
