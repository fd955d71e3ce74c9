"""monitoring/ checked with the real tools: promtool (the Prometheus config, the rules and
their unit tests, every dashboard query), amtool and Alertmanager (routing, inhibition);
and every metric the rules and dashboards use against the families the code defines, so a
renamed metric breaks a test instead of silently emptying a panel or an alert."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from myaiserv.evaluation.harness import free_port
from tests.monitoring_support import (
    ALERTMANAGER,
    ANNOTATIONS,
    DASHBOARDS,
    GRAFANA_VARIABLES,
    METRIC,
    MONITORING,
    PROVISIONING,
    RECORDED,
    RULE_FILES,
    RULE_TESTS,
    SEVERITIES,
    STRING,
    alerts,
    dashboard_queries,
    defined_series,
    load,
    rules,
)


def tool(*names: str) -> str:
    """The first of ``names`` on PATH; scripts/system-deps.sh installs them."""
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.fail(f"{names[0]} not found: run scripts/system-deps.sh (Debian prometheus packages)")


def check(*args: str) -> str:
    result = subprocess.run(
        [tool(args[0]), *args[1:]], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_prometheus_config() -> None:
    """promtool validates the config and the rule files it loads; the scaled services
    are found by DNS on their ports."""
    check("promtool", "check", "config", str(MONITORING / "prometheus.yml"))
    config = load(MONITORING / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "web", "indexer"}
    for job, port in (("web", 8000), ("indexer", 9101)):
        assert jobs[job]["dns_sd_configs"] == [
            {"names": [job], "type": "A", "port": port, "refresh_interval": "30s"}
        ]
    assert config["rule_files"] == ["rules/*.yml"]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_is_valid(path: Path) -> None:
    """promtool parses every expression and template."""
    check("promtool", "check", "rules", str(path))


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    """The alerts fire, or stay silent, on the synthetic series of rules/tests/."""
    check("promtool", "test", "rules", str(path))


def test_every_alert_is_labelled_and_documented() -> None:
    """Alertmanager routes on severity and groups on service; on-call reads the rest."""
    assert alerts()
    for rule in alerts():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["labels"].get("service"), rule["alert"]
        assert set(rule["annotations"]) >= ANNOTATIONS, rule["alert"]
        assert all(rule["annotations"][key].strip() for key in ANNOTATIONS), rule["alert"]


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    """Each (alert, severity) fires in some promtool case; each alert is silent in one."""
    fires, silent = set(), set()
    for path in RULE_TESTS:
        for group in load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                name, expected = case["alertname"], case.get("exp_alerts") or []
                fires |= {(name, alert["exp_labels"]["severity"]) for alert in expected}
                if not expected:
                    silent.add(name)
    wanted = {(rule["alert"], rule["labels"]["severity"]) for rule in alerts()}
    assert wanted - fires == set(), "no firing case"
    assert {name for name, _ in wanted} - silent == set(), "no silent case"


def test_rules_use_defined_metrics() -> None:
    """Raw series must be exposed by the code; `level:metric:op` names must be recorded."""
    series, recorded = defined_series(), {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        expr = STRING.sub('""', rule["expr"])
        assert set(METRIC.findall(expr)) <= set(series), rule.get("alert") or rule["record"]
        assert set(RECORDED.findall(expr)) <= recorded, rule.get("alert") or rule["record"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_uses_defined_metrics(path: Path) -> None:
    """Panel and variable queries name only series the code exposes."""
    series = defined_series()
    used = {m for query in dashboard_queries(path) for m in METRIC.findall(STRING.sub("", query))}
    assert used, "no myaiserv metric in the dashboard"
    assert used - set(series) == set()


def test_dashboards_are_provisioned_grafana_json() -> None:
    """Valid dashboard JSON, every panel and target on the provisioned datasource."""
    (source,) = load(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = load(PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    want = {"type": "prometheus", "uid": source["uid"]}
    assert {p.name for p in DASHBOARDS} >= {"api.json", "search.json", "indexing.json", "llm.json"}
    uids = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        uids.append(board["uid"])
        assert board["title"] and board["schemaVersion"] >= 36, path.name
        panels = board["panels"]
        assert len({p["id"] for p in panels}) == len(panels), path.name
        for panel in (p for p in panels if p["type"] != "row"):
            assert panel["datasource"] == want, (path.name, panel["title"])
            assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == want and target["expr"] and target["refId"]
        for variable in board["templating"]["list"]:
            assert variable["datasource"] == want, (path.name, variable["name"])
    assert len(set(uids)) == len(uids)


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Every panel query through Prometheus's own parser (Grafana's variables filled in)."""
    exprs = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                exprs.append(re.sub(r"\$\w+", ".*", expr))
    records = [{"record": f"dashboard:query_{i}:expr", "expr": e} for i, e in enumerate(exprs)]
    file = tmp_path / "dashboards.yml"
    file.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": records}]}))
    check("promtool", "check", "rules", str(file))


def test_alertmanager_config() -> None:
    """amtool validates it; the alerts the inhibitions name exist."""
    check("amtool", "check-config", str(ALERTMANAGER))
    named = set(re.findall(r"MyAIServ\w+", ALERTMANAGER.read_text()))
    assert named and named <= {rule["alert"] for rule in alerts()}


def test_every_alert_routes_by_severity() -> None:
    """amtool resolves each alert's labels to the receiver its severity calls for."""
    for rule in alerts():
        severity = rule["labels"]["severity"]
        labels = [f"alertname={rule['alert']}", f"severity={severity}", "cluster=myaiserv"]
        receiver = SEVERITIES[severity]
        check(
            "amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER}",
            f"--verify.receivers={receiver}", *labels,
        )  # fmt: skip


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager on a free loopback port with our config (no cluster gossip)."""
    port = free_port()
    process = subprocess.Popen(
        [
            tool("prometheus-alertmanager", "alertmanager"),
            f"--config.file={ALERTMANAGER}",
            f"--storage.path={tmp_path_factory.mktemp('alertmanager')}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/-/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("alertmanager did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


ES_RED = {"alertname": "MyAIServElasticsearchNotGreen", "severity": "critical"}
ES_YELLOW = {"alertname": "MyAIServElasticsearchNotGreen", "severity": "warning"}
LATENCY = {"alertname": "MyAIServHighLatency", "severity": "warning", "route": "/v1/search"}
ERRORS = {"alertname": "MyAIServHighErrorRate", "service": "api"}
LAG_PAGE = {"alertname": "MyAIServIndexerLag", "service": "indexer", "severity": "page"}
LAG = {**LAG_PAGE, "severity": "warning"}
WEB_DOWN = {"alertname": "MyAIServTargetDown", "severity": "warning", "service": "web"}
INDEXER_DOWN = {**WEB_DOWN, "service": "indexer"}
ES_DOWN = {"alertname": "MyAIServDependencyDown", "dependency": "elasticsearch"}
PG_DOWN = {"alertname": "MyAIServDependencyDown", "dependency": "postgres"}
INHIBITIONS = {  # firing -> the ones suppressed
    "es-red": ([ES_RED, LATENCY, ERRORS], [LATENCY]),
    "es-unreachable": ([ES_DOWN, ES_YELLOW, LATENCY, LAG, ERRORS], [ES_YELLOW, LATENCY, LAG]),
    "postgres-down": ([PG_DOWN, LATENCY, ES_YELLOW, LAG], []),
    "lag": ([LAG_PAGE, LAG], [LAG]),
    "redis-down": ([{"alertname": "MyAIServRedisDown"}, LATENCY], [LATENCY]),
    "api-down": ([{"alertname": "MyAIServApiDown"}, WEB_DOWN, INDEXER_DOWN], [WEB_DOWN]),
}


@pytest.mark.parametrize(("firing", "inhibited"), INHIBITIONS.values(), ids=INHIBITIONS.keys())
def test_inhibitions(
    alertmanager: str, firing: list[dict[str, str]], inhibited: list[dict[str, str]]
) -> None:
    """Post the alerts to a real Alertmanager; exactly ``inhibited`` end up suppressed."""
    cluster = uuid.uuid4().hex  # inhibitions match on cluster: cases stay apart

    def labels(alert: dict[str, str]) -> str:
        full = {"severity": "critical", "service": "x", **alert, "cluster": cluster}
        return json.dumps(full, sort_keys=True)

    posted = [{"labels": json.loads(labels(a))} for a in firing]
    httpx.post(f"{alertmanager}/api/v2/alerts", json=posted).raise_for_status()
    want = sorted(map(labels, inhibited))

    def suppressed() -> list[str]:
        got = httpx.get(f"{alertmanager}/api/v2/alerts", params={"filter": f'cluster="{cluster}"'})
        assert len(got.json()) == len(firing)
        return sorted(
            json.dumps(a["labels"], sort_keys=True)
            for a in got.json()
            if a["status"]["inhibitedBy"]
        )

    deadline = time.monotonic() + 10
    while suppressed() != want and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # let the inhibitor settle, so an empty `want` means something
    assert suppressed() == want
