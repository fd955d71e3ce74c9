"""The API's Prometheus metrics (the indexer's are in ``indexers/metrics.py``).

With several server workers per container, ``PROMETHEUS_MULTIPROC_DIR`` is set (by
``myaiserv serve``) before any worker imports prometheus_client, and ``/metrics`` merges
every worker's samples, so one scrape covers the whole instance. Gauges say how they
merge (``multiprocess_mode``).

Label values are bounded: routes are templates (``/v1/runs/{run_id:uuid}``), never raw
paths; providers and models come from the settings. No tenant, key or other value a
client chooses is ever a label (``tests/unit/test_metric_labels.py`` holds the allowed
label names): per-tenant figures are in the runs index (``POST /v1/runs/search``
aggregations) and the quotas.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)

HTTP_REQUESTS = Counter(
    "myaiserv_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "myaiserv_http_request_duration_seconds",
    "HTTP request duration (to the response's start) by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
AUTH_FAILURES = Counter(
    "myaiserv_auth_failures_total",
    "Refused API keys by reason (missing, malformed, invalid, revoked, expired); the "
    "audit log keeps a sample.",
    ["reason"],
)
AUTH_THROTTLED = Counter(
    "myaiserv_auth_throttled_total",
    "Requests refused (429) because their address or key prefix had too many failed "
    "authentications this minute, by scope (address, prefix).",
    ["scope"],
)
QUOTA_REFUSALS = Counter(
    "myaiserv_quota_refusals_total",
    "LLM calls refused because a tenant's daily quota was used up, by quota.",
    ["quota"],
)
SEARCH_STAGE = Histogram(
    "myaiserv_search_stage_seconds",
    "Search time by stage: embed (query embedding), elasticsearch (the _msearch round "
    "trip), fusion (fusing the lists and shaping), total.",
    ["stage", "mode"],
    buckets=LATENCY_BUCKETS,
)
SEARCH_ES_TOOK = Histogram(
    "myaiserv_search_es_took_seconds",
    "Elasticsearch's own `took` for the slowest search of a request.",
    ["mode"],
    buckets=LATENCY_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "myaiserv_cache_requests_total",
    "Cache lookups by cache (search, answers, embeddings) and result (hit, miss, bypass).",
    ["cache", "result"],
)
EMBED_BATCH = Histogram(
    "myaiserv_embedding_batch_seconds",
    "Time to embed one batch of texts with the local model.",
    buckets=LATENCY_BUCKETS,
)
EMBED_ITEMS = Counter("myaiserv_embedding_items_total", "Texts embedded by the local model.")
EMBED_CORE_WAIT = Counter(
    "myaiserv_embedding_core_wait_seconds_total",
    "Time batches waited for a core another process on the machine was embedding on.",
)
LLM_REQUESTS = Counter(
    "myaiserv_llm_requests_total",
    "LLM calls by provider, model and status (ok, error, timeout, cached).",
    ["provider", "model", "status"],
)
LLM_TOKENS = Counter(
    "myaiserv_llm_tokens_total",
    "LLM tokens by provider, model and kind (prompt, completion).",
    ["provider", "model", "kind"],
)
LLM_COST = Counter(
    "myaiserv_llm_cost_usd_total",
    "LLM cost in USD from the price table, by provider and model.",
    ["provider", "model"],
)
LLM_DURATION = Histogram(
    "myaiserv_llm_request_duration_seconds",
    "LLM call duration (whole answer) by provider, model and status.",
    ["provider", "model", "status"],
    buckets=LLM_BUCKETS,
)
LLM_TTFT = Histogram(
    "myaiserv_llm_time_to_first_token_seconds",
    "Time to the first token of an answer by provider and model.",
    ["provider", "model"],
    buckets=LLM_BUCKETS,
)
READY = Gauge(
    "myaiserv_dependency_up",
    "1 when the dependency answered the last readiness check, else 0.",
    ["dependency"],
    multiprocess_mode="livemin",
)
DEPENDENCY_BREAKER = Gauge(
    "myaiserv_dependency_breaker_state",
    "Circuit breaker of a datastore: 0 closed, 1 half-open (probing), 2 open (skipped or "
    "refused at once); the worst of the instance's workers.",
    ["dependency"],
    multiprocess_mode="livemax",
)
ES_CLUSTER_STATUS = Gauge(
    "myaiserv_es_cluster_status",
    "Elasticsearch cluster health at the last readiness check: 0 green, 1 yellow, 2 red.",
    multiprocess_mode="livemax",
)
ES_STATUS_CODES = {"green": 0, "yellow": 1, "red": 2}


def exposition() -> tuple[bytes, str]:
    """This process's metrics, or every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
