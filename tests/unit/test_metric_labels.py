"""Every Prometheus label is a bounded one: a route template, a status, a reason from our
code, a provider or model from the settings. A tenant, key, address or any value a client
chooses would make one series per value (memory in every process, a scrape that grows
without end), so a label outside this list fails here, not in production."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import indexers
import myaiserv
from indexers.metrics import reason_label

# label -> where its values come from (each a closed set)
ALLOWED = {
    "route": "route templates of the app",
    "method": "HTTP methods",
    "status": "HTTP status codes, or an outcome word",
    "reason": "refusal and failure reasons named in our code",
    "scope": "what a throttle counts by (address, prefix)",
    "quota": "the quota names",
    "stage": "search stages",
    "mode": "search modes",
    "cache": "the caches",
    "result": "hit, miss, bypass",
    "provider": "LLM providers from the settings",
    "model": "models from the settings (never the name a request sent)",
    "kind": "token kinds",
    "dependency": "the datastores",
    "outcome": "indexing outcomes",
}


def _metrics() -> Iterator[tuple[str, MetricWrapperBase]]:
    """Every metric defined at module level in the product (each module imported)."""
    for package in (myaiserv, indexers):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" in info.name or info.name.endswith(".__main__"):
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if isinstance(value, MetricWrapperBase):
                    yield f"{info.name}.{name}", value


def test_every_metric_label_is_a_bounded_one() -> None:
    found = dict(_metrics())
    assert len(found) >= 20  # the walk reached metrics.py and indexers/metrics.py
    unbounded = {
        where: sorted(set(metric._labelnames) - ALLOWED.keys())
        for where, metric in found.items()
        if set(metric._labelnames) - ALLOWED.keys()
    }
    assert not unbounded, f"labels outside the allow-list (unbounded values?): {unbounded}"


def test_every_registered_metric_is_one_the_scan_saw() -> None:
    """A metric registered from inside a function would escape the label check above."""
    scanned = {metric._name for _, metric in _metrics()}
    ours = {family.name for family in REGISTRY.collect() if family.name.startswith("myaiserv_")}
    assert ours <= scanned, f"registered outside a module's top level: {ours - scanned}"


def test_free_text_from_a_remote_error_is_folded() -> None:
    assert reason_label("mapper_parsing_exception") == "mapper_parsing_exception"
    assert reason_label("http_429") == "http_429"
    assert reason_label("failed to parse field [year] of type [long]") == "other"
    assert reason_label("x" * 65) == "other"
