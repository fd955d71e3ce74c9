"""The indexer's metrics (exported on its own /metrics port)."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_PENDING = Gauge("myaiserv_indexer_outbox_pending", "Outbox rows waiting to be indexed.")
OUTBOX_OLDEST_AGE = Gauge(
    "myaiserv_indexer_outbox_oldest_age_seconds", "Age of the oldest pending outbox row."
)
ROWS = Counter("myaiserv_indexer_rows_total", "Outbox rows settled, by outcome.", ["outcome"])
BULK_FAILURES = Counter(
    "myaiserv_indexer_bulk_failures_total", "Failed bulk items, by reason.", ["reason"]
)
DEAD_LETTERS = Counter("myaiserv_indexer_dead_letters_total", "Rows moved to dead_letters.")
BATCH_SECONDS = Histogram(
    "myaiserv_indexer_batch_seconds",
    "Time to process one outbox batch.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


# Elasticsearch's error types (mapper_parsing_exception) and http_<status>; anything else
# (an error given as free text) is not a label value.
_REASON = re.compile(r"^[a-z0-9_]{1,64}$")


def reason_label(reason: str) -> str:
    return reason if _REASON.match(reason) else "other"


def record_batch(result: Any) -> None:
    if result.claimed == 0:
        return
    ROWS.labels("indexed").inc(result.indexed)
    ROWS.labels("retried").inc(result.retried)
    ROWS.labels("dead").inc(result.dead)
    DEAD_LETTERS.inc(result.dead)
    for reason, count in result.failures.items():
        BULK_FAILURES.labels(reason_label(reason)).inc(count)
    BATCH_SECONDS.observe(result.seconds)
