"""Starting tracing in a process: the tracer provider (resource, sampler, exporter behind
a ``BatchSpanProcessor``), set as OpenTelemetry's global provider, and the client
instrumentations that record datastore calls (asyncpg, Redis; Elasticsearch's client
makes its own spans through the global provider once one is set).

One provider per process: OpenTelemetry's global can be set once, and the libraries that
trace themselves read it. A second ``start_tracing`` in the same process (tests building
several apps) keeps the first one's settings and does not own its shutdown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from myaiserv import __version__
from myaiserv.config import Settings, TracingSettings
from myaiserv.logging import get_logger
from myaiserv.tracing.sampling import sampler

log = get_logger(__name__)

Role = Literal["api", "indexer"]
EXPORT_TIMEOUT_S = 10


@dataclass
class Tracing:
    """A process's tracing, as started; ``shutdown()`` flushes what is buffered."""

    provider: TracerProvider | None = None
    owned: bool = False

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def shutdown(self) -> None:
        if self.provider is not None and self.owned:
            self.provider.shutdown()  # flushes the batch processor, then stops it
            self.owned = False


def service_name(settings: TracingSettings, role: Role) -> str:
    return settings.service_name if role == "api" else f"{settings.service_name}-indexer"


def exporter(settings: TracingSettings) -> SpanExporter:
    if settings.exporter == "zipkin":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter(endpoint=settings.export_url, timeout=EXPORT_TIMEOUT_S)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.export_url, timeout=EXPORT_TIMEOUT_S)


def build_provider(settings: Settings, role: Role) -> TracerProvider:
    tracing = settings.tracing
    resource = Resource.create(
        {
            "service.name": service_name(tracing, role),
            "service.version": __version__,
            "service.instance.id": tracing.instance or settings.instance,
        }
    )
    provider = TracerProvider(resource=resource, sampler=sampler(tracing.sample_ratio))
    provider.add_span_processor(BatchSpanProcessor(exporter(tracing)))
    return provider


def instrument(provider: TracerProvider) -> None:
    """Patch the datastore clients in (once per process: the instrumentors remember)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    # AsyncPGInstrumentor.__init__ is not annotated.
    for instrumentor in (AsyncPGInstrumentor(), RedisInstrumentor()):  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def start_tracing(settings: Settings, role: Role) -> Tracing:
    """Tracing as ``settings.tracing`` says; off, nothing at all is installed."""
    if not settings.tracing.enabled:
        return Tracing()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        log.warning("tracing already started in this process; its settings stay")
        return Tracing(current, owned=False)
    provider = build_provider(settings, role)
    trace.set_tracer_provider(provider)
    instrument(provider)
    log.info(
        "tracing started",
        exporter=settings.tracing.exporter,
        endpoint=settings.tracing.export_url,
        sample_ratio=settings.tracing.sample_ratio,
        service=service_name(settings.tracing, role),
    )
    return Tracing(provider, owned=True)
