"""index status: every indexed record says whether its version is pending, indexed or
failed; index generations (keys of cached result pages) move from Redis to PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Existing rows are backfilled from what the pipeline knows: a row with an outbox row is
``pending``; else a row whose current version was dead-lettered is ``failed`` (with the
dead letter's reason and time); else it was indexed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("documents", "prompts", "conversations", "messages", "runs")


def upgrade() -> None:
    op.create_table(
        "index_generations",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "generation", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("scope", "kind", name=op.f("pk_index_generations")),
    )
    for table in TABLES:
        # Added as "indexed" (a constant default: no table rewrite), then the default new
        # rows get becomes "pending".
        op.add_column(
            table,
            sa.Column(
                "index_status", sa.String(length=16), server_default="indexed", nullable=False
            ),
        )
        op.add_column(table, sa.Column("index_error", sa.Text(), nullable=True))
        op.add_column(
            table, sa.Column("index_failed_at", sa.DateTime(timezone=True), nullable=True)
        )
        op.alter_column(table, "index_status", server_default="pending")
        op.execute(
            sa.text(
                f"UPDATE {table} t SET index_status = 'pending' "  # noqa: S608 - constant names
                "WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.kind = :kind AND o.entity_id = t.id)"
            ).bindparams(kind=table)
        )
        op.execute(
            sa.text(
                f"UPDATE {table} t SET index_status = 'failed', "  # noqa: S608
                "index_error = d.reason || ': ' || d.error, index_failed_at = d.created_at "
                "FROM (SELECT DISTINCT ON (entity_id) entity_id, version, reason, error, "
                "created_at FROM dead_letters WHERE kind = :kind "
                "ORDER BY entity_id, id DESC) d "
                "WHERE d.entity_id = t.id AND d.version >= t.version "
                "AND t.index_status = 'indexed'"
            ).bindparams(kind=table)
        )


def downgrade() -> None:
    op.drop_table("index_generations")
    for table in TABLES:
        op.drop_column(table, "index_failed_at")
        op.drop_column(table, "index_error")
        op.drop_column(table, "index_status")
