"""A trace's identity in the forms we store: a W3C ``traceparent`` string (carried by an
outbox row to the indexer) and a trace id (kept with a run, printed in log lines)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The current span as a ``traceparent`` header value; None outside a sampled span
    (tracing off, or a trace not recorded: nothing would continue it)."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid or not span.trace_flags.sampled:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def from_traceparent(value: str | None) -> Context | None:
    """The remote span a stored ``traceparent`` names (None: none, or malformed)."""
    if not value:
        return None
    context = _W3C.extract({"traceparent": value})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits) when it is recorded, else None."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid or not span.trace_flags.sampled:
        return None
    return trace.format_trace_id(span.trace_id)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, recorded or not (for log lines)."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return None
    return trace.format_trace_id(span.trace_id), trace.format_span_id(span.span_id)
