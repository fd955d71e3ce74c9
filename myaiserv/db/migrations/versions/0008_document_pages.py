"""document pages: where each page of a PDF begins in its text, so chunks, search hits and
citations can name the pages they come from

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("page_starts", postgresql.ARRAY(sa.Integer())))


def downgrade() -> None:
    op.drop_column("documents", "page_starts")
