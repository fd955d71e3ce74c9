"""What the monitoring tests share: where monitoring/ keeps its files, the rules and
dashboard queries read from them, and the metric families the code registers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

MONITORING = Path(__file__).resolve().parents[1] / "monitoring"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "rules" / "tests").glob("*.yml"))
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = MONITORING / "grafana" / "provisioning"
ALERTMANAGER = MONITORING / "alertmanager.yml"

SEVERITIES = {"critical": "pager", "page": "pager", "warning": "chat"}  # -> receiver
ANNOTATIONS = {"summary", "description", "runbook"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
METRIC = re.compile(r"(?<![\w:])myaiserv_\w+(?![\w:])")
RECORDED = re.compile(r"(?<![\w:])[a-zA-Z_]\w*:[\w:]+")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for g in load(path)["groups"] for rule in g["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def strings_under(node: Any, keys: set[str]) -> Iterator[str]:
    """Every string value under one of ``keys``, at any depth (targets, template queries)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                yield value
            else:
                yield from strings_under(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from strings_under(item, keys)


def dashboard_queries(path: Path) -> list[str]:
    return list(strings_under(json.loads(path.read_text()), {"expr", "query", "definition"}))


def defined_series() -> dict[str, str]:
    """Sample name -> family, for every family the API and the indexer register."""
    from prometheus_client import REGISTRY

    import indexers.metrics  # noqa: F401  (importing registers the families)
    import myaiserv.metrics  # noqa: F401

    return {
        family.name + suffix: family.name
        for family in REGISTRY.collect()
        if family.name.startswith("myaiserv_")
        for suffix in SUFFIXES[family.type]
    }
