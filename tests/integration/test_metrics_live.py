"""The metric families monitoring/ (rules and dashboards) relies on are really emitted:
after a search, a document write, /ready and an indexer drain against the real stack, the
API's /metrics and the indexer's registry hold samples of every one of them."""

from __future__ import annotations

import uuid

import prometheus_client
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from myaiserv.resources import Resources
from tests.monitoring_support import DASHBOARDS, METRIC, defined_series, rules
from tests.support import drain

pytestmark = pytest.mark.integration

API = ("myaiserv_http_", "myaiserv_search_", "myaiserv_cache_", "myaiserv_embedding_")
API_GAUGES = ("myaiserv_dependency_up", "myaiserv_es_cluster_status")
INDEXER = ("myaiserv_indexer_",)
# Only emitted when an item fails: a clean drain declares the family but has no sample.
ON_FAILURE = {"myaiserv_indexer_bulk_failures"}


def referenced(prefixes: tuple[str, ...]) -> set[str]:
    """The families the rules and dashboards use whose names start with ``prefixes``."""
    series = defined_series()
    texts = [rule["expr"] for rule in rules()] + [path.read_text() for path in DASHBOARDS]
    used = {series[name] for text in texts for name in METRIC.findall(text) if name in series}
    return {family for family in used if family.startswith(prefixes)}


def sampled(exposition: str) -> set[str]:
    """Families with at least one sample in a text exposition."""
    return {f.name for f in text_string_to_metric_families(exposition) if f.samples}


async def test_api_and_indexer_emit_what_monitoring_uses(
    api: AsyncTestClient, resources: Resources
) -> None:
    word = uuid.uuid4().hex[:12]
    created = await api.post("/v1/documents", json={"text": f"Metrics are emitted {word}."})
    assert created.status_code == 201, created.text
    assert await drain(resources) >= 1
    search = await api.post("/v1/search", json={"query": f"emitted {word}", "mode": "hybrid"})
    assert search.status_code == 200, search.text
    assert (await api.get("/ready")).status_code == 200

    scrape = await api.get("/metrics")
    assert scrape.status_code == 200
    want = referenced(API + API_GAUGES)
    assert want == {f for f in defined_series().values() if f.startswith(API + API_GAUGES)}
    assert want - sampled(scrape.text) == set(), "referenced but not emitted by the API"
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    up = {s.labels["dependency"]: s.value for s in families["myaiserv_dependency_up"].samples}
    assert up == {"elasticsearch": 1, "postgres": 1, "redis": 1}

    local = prometheus_client.generate_latest().decode()  # the worker ran in this process
    want = referenced(INDEXER)
    assert want >= {"myaiserv_indexer_outbox_oldest_age_seconds", "myaiserv_indexer_rows"}
    assert want - ON_FAILURE - sampled(local) == set(), "referenced but not emitted"
    declared = {f.name for f in text_string_to_metric_families(local)}
    assert want <= declared
