"""Tracing's parts without a trace store: off installs nothing; the sampler; the
traceparent round trip; trace ids in log lines; the indexer's parent choice."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind

from indexers.tracing import batch_span, row_spans
from myaiserv.app import create_app
from myaiserv.config import Settings
from myaiserv.db.models import OutboxEvent
from myaiserv.logging import configure_logging, get_logger
from myaiserv.tracing.context import current_trace_id, current_traceparent, from_traceparent
from myaiserv.tracing.http import server_span_middleware
from myaiserv.tracing.sampling import sampler
from myaiserv.tracing.setup import start_tracing

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_off_installs_nothing() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]  # not the stack's .env
    before = trace.get_tracer_provider()
    tracing = start_tracing(settings, "api")
    assert not tracing.enabled
    assert trace.get_tracer_provider() is before  # still OpenTelemetry's proxy
    assert not isinstance(before, TracerProvider)
    app = create_app(settings)
    traced = server_span_middleware().middleware
    assert not any(getattr(m, "middleware", None) is traced for m in app.middleware)
    with trace.get_tracer("t").start_as_current_span("x") as span:
        assert not span.is_recording() and current_traceparent() is None


def test_sampler_ratio_parent_and_stray_clients() -> None:
    never, always = sampler(0.0), sampler(1.0)
    assert never.should_sample(None, 1, "GET").decision is Decision.DROP
    assert always.should_sample(None, 1, "GET", SpanKind.SERVER).decision is not Decision.DROP
    # A lone datastore command outside any request or job starts no trace.
    dropped = always.should_sample(None, 1, "select", SpanKind.CLIENT)
    assert dropped.decision is Decision.DROP
    # A client's sampled traceparent is followed whatever the ratio.
    parent = from_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01")
    assert never.should_sample(parent, 1, "GET").decision is not Decision.DROP


def test_postgres_transaction_control_is_not_recorded() -> None:
    """Inside a recorded request, a query is recorded; its BEGIN, ROLLBACK and the pool's
    empty ping are not."""
    always = sampler(1.0)
    parent = from_traceparent(f"00-{TRACE}-00f067aa0ba902b7-01")

    def decision(statement: str, system: str = "postgresql") -> Decision:
        attributes = {"db.system": system, "db.statement": statement}
        return always.should_sample(
            parent, 1, statement.split(" ")[0], SpanKind.CLIENT, attributes
        ).decision

    assert (
        decision("SELECT api_keys.id FROM api_keys WHERE prefix = $1") is Decision.RECORD_AND_SAMPLE
    )
    assert decision("UPDATE outbox SET attempts = attempts + 1") is Decision.RECORD_AND_SAMPLE
    for statement in ("BEGIN;", "begin", "ROLLBACK;", "COMMIT", ";", ""):
        assert decision(statement) is Decision.DROP, statement
    # Another system's command of the same name is its own business.
    assert decision("BEGIN", system="redis") is Decision.RECORD_AND_SAMPLE


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler(1.0))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_traceparent_round_trip() -> None:
    provider, _ = recording()
    with provider.get_tracer("t").start_as_current_span("write") as span:
        stored = current_traceparent()
        assert current_trace_id() == trace.format_trace_id(span.get_span_context().trace_id)
    assert stored is not None
    context = from_traceparent(stored)
    assert context is not None
    remote = trace.get_current_span(context).get_span_context()
    assert remote.span_id == span.get_span_context().span_id
    assert from_traceparent("garbage") is None and from_traceparent(None) is None


def test_log_lines_carry_trace_and_span_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_logs=True)
    provider, _ = recording()
    with provider.get_tracer("t").start_as_current_span("work") as span:
        get_logger("t").info("inside")
    get_logger("t").info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    inside, outside = lines[-2], lines[-1]
    assert inside["trace_id"] == trace.format_trace_id(span.get_span_context().trace_id)
    assert inside["span_id"] == trace.format_span_id(span.get_span_context().span_id)
    assert "trace_id" not in outside
    logging.getLogger().handlers.clear()


def row(id: int, traceparent: str | None) -> OutboxEvent:
    return OutboxEvent(
        id=id, kind="documents", entity_id="00000000-0000-0000-0000-000000000001",
        op="upsert", version=1, traceparent=traceparent,
    )  # fmt: skip


def test_a_batch_of_one_write_continues_its_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    provider, exporter = recording()
    monkeypatch.setattr("indexers.tracing.tracer", provider.get_tracer("indexers"))
    write = f"00-{TRACE}-00f067aa0ba902b7-01"
    with batch_span([row(1, write), row(2, write)]) as span:
        row_spans(span, [row(1, write), row(2, write)], {}, 0)
    (batch,) = exporter.get_finished_spans()
    assert trace.format_trace_id(batch.context.trace_id) == TRACE
    assert batch.parent is not None and batch.parent.span_id == 0x00F067AA0BA902B7


def test_a_mixed_batch_links_and_leaves_a_span_in_each_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, exporter = recording()
    monkeypatch.setattr("indexers.tracing.tracer", provider.get_tracer("indexers"))
    first, second = f"00-{TRACE}-00f067aa0ba902b7-01", f"00-{'1' * 32}-00f067aa0ba902b8-01"
    rows = [row(1, first), row(2, second), row(3, None)]
    with batch_span(rows) as span:
        row_spans(span, rows, {2: "retry"}, 0)
    spans = exporter.get_finished_spans()
    batch = next(s for s in spans if s.name == "indexer batch")
    assert batch.parent is None and len(batch.links) == 2
    per_row = {trace.format_trace_id(s.context.trace_id): s for s in spans if s is not batch}
    assert set(per_row) == {TRACE, "1" * 32}
    assert per_row["1" * 32].status.status_code is trace.StatusCode.ERROR
