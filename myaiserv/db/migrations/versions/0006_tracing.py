"""tracing: an outbox row carries its write's trace (traceparent) to the indexer; a run
keeps the id of the trace it was recorded in

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: adding them rewrites nothing (a catalog change only).
    op.add_column("outbox", sa.Column("traceparent", sa.String(55), nullable=True))
    op.add_column("runs", sa.Column("trace_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "trace_id")
    op.drop_column("outbox", "traceparent")
