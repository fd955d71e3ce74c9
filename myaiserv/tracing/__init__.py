"""OpenTelemetry distributed tracing, from ``settings.tracing``.

``setup`` starts it once per process (the API's lifespan, the indexer's start) and flushes
it on exit; ``sampling`` decides which traces are kept; ``context`` carries a trace across
the outbox (a ``traceparent`` string) and names the current trace in runs and logs;
``spans`` holds the small helpers our own spans share (errors, links); ``genai`` the LLM
call's span (GenAI semantic conventions); ``http`` the API's server span.

Off (``exporter = "none"``, the default) nothing is installed: no instrumentation is
patched in, no middleware is added, and every tracer is OpenTelemetry's no-op one.
"""
