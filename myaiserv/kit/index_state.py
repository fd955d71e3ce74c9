"""A record's index state over the wire, the same for documents, prompts, conversations
and runs: ``index_status``, and when it is ``failed`` the reason and the time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from myaiserv.db.models import IndexStatus, TenantRecord


class IndexState(msgspec.Struct, kw_only=True):
    """Fields of every record's output: ``pending`` (written, not yet searchable),
    ``indexed`` (searchable at this version) or ``failed`` (will not be searchable until
    requeued: ``index_error`` says why, ``index_failed_at`` when)."""

    index_status: IndexStatus
    index_error: str | None = None
    index_failed_at: datetime | None = None


def index_state(record: TenantRecord) -> dict[str, Any]:
    """The ``IndexState`` fields of a stored record."""
    return {
        "index_status": record.index_status,
        "index_error": record.index_error,
        "index_failed_at": record.index_failed_at,
    }
