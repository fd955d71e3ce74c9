"""Which new traces are recorded: ``sample_ratio`` of them, parent-based (a client's
sampled ``traceparent`` is followed), but never a trace that would start with a lone
datastore call.

Why the exception: the instrumented clients (asyncpg, Redis) make a span for every
command, also outside any request or job, e.g. an idle indexer polling the outbox
twice a second. Such a span would be a whole trace of one query, recorded forever; work
worth a trace starts with a server span (a request) or one of our own (an indexer batch).

Nor is a PostgreSQL transaction's bookkeeping recorded: the asyncpg instrumentation makes
a span of every statement, and a request's few queries come wrapped in ``BEGIN``,
``ROLLBACK`` and the pool's liveness ping (an empty statement), two thirds of its
PostgreSQL spans, saying nothing the queries' spans do not, at the cost of recording and
exporting each (bench/REPORT.md, "Tracing overhead").
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

TRANSACTION_CONTROL = frozenset({"", "begin", "commit", "rollback"})
STATEMENT_KEYS = ("db.statement", "db.query.text")


def transaction_control(kind: SpanKind | None, attributes: Attributes) -> bool:
    """A PostgreSQL client span of BEGIN, COMMIT, ROLLBACK or an empty statement."""
    if kind is not SpanKind.CLIENT or not attributes:
        return False
    if attributes.get("db.system", attributes.get("db.system.name")) != "postgresql":
        return False
    statement = next((attributes[k] for k in STATEMENT_KEYS if k in attributes), None)
    return (
        isinstance(statement, str)
        and statement.strip().rstrip(";").strip().lower() in TRANSACTION_CONTROL
    )


class Policy(Sampler):
    """ParentBased(``TraceIdRatioBased(ratio)``), except that transaction control is never
    recorded and a client span never starts a trace."""

    def __init__(self, ratio: float) -> None:
        self._ratio = ratio
        self._inner = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        # The parent as ParentBased finds it: the given context's span, else the current.
        has_parent = get_current_span(parent_context).get_span_context().is_valid
        if transaction_control(kind, attributes) or (kind is SpanKind.CLIENT and not has_parent):
            return SamplingResult(Decision.DROP, None, trace_state)
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"MyAIServPolicy{{{self._ratio}}}"


def sampler(ratio: float) -> Sampler:
    """Children follow their parent's decision; ``ratio`` of new traces are kept."""
    return Policy(ratio)
