"""Helpers our own spans share."""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode


def fail(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc``: status ERROR, the exception recorded as an event."""
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
