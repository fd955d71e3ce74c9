"""The indexer's spans: a batch continues the traces of the writes it indexes.

Each outbox row carries its write's ``traceparent``. A batch whose rows all come from one
traced write (the usual case for an interactive write) is a child span of that write:
the trace shows the document from POST to searchable, chunking, embedding and the bulk
write included. A batch mixing several traces is a root span of its own, linked to each,
and each such write's trace gets a short span for its row (outcome, version), linked back
to the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode

from myaiserv.db.models import OutboxEvent
from myaiserv.tracing.context import from_traceparent

tracer = trace.get_tracer("indexers")


def _contexts(rows: Sequence[OutboxEvent]) -> dict[int, Context]:
    """Each row's write context, by row id (rows written untraced have none)."""
    out: dict[int, Context] = {}
    for row in rows:
        context = from_traceparent(row.traceparent)
        if context is not None:
            out[row.id] = context
    return out


def _trace_id(context: Context) -> int:
    return trace.get_current_span(context).get_span_context().trace_id


@contextmanager
def batch_span(rows: Sequence[OutboxEvent]) -> Iterator[Span]:
    """The current span of a batch's work on ``rows`` (see the module's docstring)."""
    contexts = _contexts(rows)
    traces = {_trace_id(c): c for c in contexts.values()}
    attributes = {"myaiserv.indexer.rows": len(rows)}
    if len(traces) == 1:
        (parent,) = traces.values()
        with tracer.start_as_current_span("indexer batch", parent, attributes=attributes) as span:
            yield span
        return
    links = [Link(trace.get_current_span(c).get_span_context()) for c in contexts.values()]
    # An empty context: a root span, whatever is current.
    with tracer.start_as_current_span(
        "indexer batch", Context(), links=links, attributes=attributes
    ) as span:
        yield span


def row_spans(
    batch: Span,
    rows: Sequence[OutboxEvent],
    outcomes: dict[int, str],
    start_time: int,
) -> None:
    """A span in each row's write trace that the batch span is not part of, from the
    batch's start to now (``outcomes``: ``done``, ``retry`` or ``dead`` by row id)."""
    batch_context = batch.get_span_context()
    if not batch_context.is_valid:
        return
    for row_id, context in _contexts(rows).items():
        if _trace_id(context) == batch_context.trace_id:
            continue
        row = next(r for r in rows if r.id == row_id)
        outcome = outcomes.get(row_id, "done")
        span = tracer.start_span(
            f"index {row.kind}",
            context,
            links=[Link(batch_context)],
            start_time=start_time,
            attributes={
                "myaiserv.indexer.entity_id": str(row.entity_id),
                "myaiserv.indexer.op": row.op,
                "myaiserv.indexer.version": row.version,
                "myaiserv.indexer.outcome": outcome,
            },
        )
        if outcome != "done":
            span.set_status(Status(StatusCode.ERROR, f"indexing {outcome}"))
        span.end()
