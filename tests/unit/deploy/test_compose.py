"""The Docker deployment checked without starting it (tests/topology runs it for real):
Compose itself validates
docker-compose.yml (`docker compose config`, or docker-compose 1.29) and resolves it with
.env.example, and the topology is asserted on what it resolves; .env.example is checked
against the compose file and the app's settings; the Dockerfile's stages, user and
healthcheck are read; docker/nginx.conf passes the real `nginx -t`, and a real nginx
proxies to stand-in instances: request ids, headers, unbuffered streaming, the page when
no instance answers, and requests spread over every address a DNS server gives for `web`
(as Docker's does for a scaled service), a dead one passed over."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dotenv import dotenv_values
from pydantic import BaseModel

from myaiserv.config import LimitSettings, Settings
from myaiserv.evaluation.harness import free_port

ROOT = Path(__file__).parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NGINX_CONF = ROOT / "docker" / "nginx.conf"
ENV_EXAMPLE = ROOT / ".env.example"
MONITORING = ROOT / "monitoring"

SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-for-test",
    "GRAFANA_ADMIN_PASSWORD": "gf-secret",
    "MYAISERV_SEARCH__CURSOR_SECRET": "cursor-secret",
    "MYAISERV_CONSOLE__SECRET": "console-secret",
    "REDIS_PASSWORD": "redis-secret",
    "ELASTIC_PASSWORD": "elastic-secret",
    "MYAISERV_ES__PASSWORD": "es-app-secret",
}
ES_NODES = ("es01", "es02", "es03")
REDIS_REPLICAS = ("redis-replica-1", "redis-replica-2")
REDIS_SENTINELS = ("redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3")
MONITORING_UIS = {"prometheus", "alertmanager", "grafana", "jaeger"}
# Variables Compose reads itself, not through ${...} in the file.
COMPOSE_OWN = {"COMPOSE_PROJECT_NAME"}
# MYAISERV_* variables in .env.example that only the compose file reads.
COMPOSE_ONLY = {"MYAISERV_IMAGE"}
SEED_VARIABLES = {"DATABASE_URL", "REDIS_URL", "ES_URL", "LOG_LEVEL", "DEBUG", "HOST", "PORT"}
EXAMPLE_LINE = re.compile(r"^#\s*(MYAISERV_[A-Z0-9_]+=.*)$")


# -- helpers ---------------------------------------------------------------------------


def compose_command() -> list[str]:
    """Docker Compose v2 when the plugin answers, else docker-compose 1.29 (Debian's
    package, which scripts/system-deps.sh installs): both validate without an engine."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    pytest.fail("neither `docker compose` nor docker-compose found: run scripts/system-deps.sh")


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A bare environment: variables of the shell running the tests must not leak into
    # the interpolation; --env-file keeps the repository's .env (the local stack's) out.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "DOCKER_CONFIG") if key in os.environ}
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def env_file(folder: Path, values: dict[str, str]) -> Path:
    """A copy of .env.example with ``values`` filled in."""
    text = ENV_EXAMPLE.read_text()
    for key, value in values.items():
        text, count = re.subn(rf"^{key}=.*$", f"{key}={value}", text, flags=re.MULTILINE)
        assert count == 1, f"{key} is not set in .env.example"
    path = folder / "compose.env"
    path.write_text(text)
    return path


def example_values(*, commented: bool) -> dict[str, str]:
    """.env.example's assignments, parsed as Compose parses them (python-dotenv: quotes
    stripped); with ``commented``, also the commented ``# MYAISERV_...=`` examples."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = EXAMPLE_LINE.match(line)
        lines.append(match.group(1) if commented and match else line)
    values = dotenv_values(stream=io.StringIO("\n".join(lines) + "\n"))
    return {key: value or "" for key, value in values.items()}


def commented_examples() -> dict[str, str]:
    documented = example_values(commented=True)
    assigned = example_values(commented=False)
    return {k: v for k, v in documented.items() if k not in assigned}


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (str(item).partition("=") for item in env)
        return {key: value if sep else None for key, sep, value in pairs}
    return {key: None if value is None else str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def ports(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, published port, container port), short or long syntax."""
    out = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            out.append(
                (str(port.get("host_ip", "")), str(port.get("published", "")), str(port["target"]))
            )
            continue
        parts = str(port).split("/")[0].split(":")
        host = parts[0] if len(parts) == 3 else ""
        published = parts[-2] if len(parts) >= 2 else ""
        out.append((host, published, parts[-1]))
    return out


def volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume, or a host path as Compose resolved it)."""
    out = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            out[volume["target"]] = str(volume.get("source", ""))
        else:
            source, target = str(volume).split(":")[:2]
            out[target] = source
    return out


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def replicas(service: dict[str, Any]) -> int:
    """`scale`, which Compose v2 may render as `deploy.replicas`."""
    return int(service.get("scale") or (service.get("deploy") or {}).get("replicas") or 1)


def healthcheck_test(service: dict[str, Any]) -> list[str]:
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return ["NONE"]
    test = check.get("test") or []
    return [test] if isinstance(test, str) else [str(part) for part in test]


def is_setting(variable: str) -> bool:
    """Whether ``MYAISERV_A__B`` names a field of the settings tree."""
    model: type[BaseModel] = Settings
    parts = variable.removeprefix("MYAISERV_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


# -- the compose file, as Compose resolves it ------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The file itself (PyYAML resolves anchors and merge keys as Compose does)."""
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = env_file(tmp_path_factory.mktemp("compose"), SECRETS)
    result = compose(path, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resolved["services"]


def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the MyAIServ image (they are the ones that build it)."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def test_compose_config_is_valid(tmp_path: Path) -> None:
    result = compose(env_file(tmp_path, SECRETS), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    result = compose(env_file(tmp_path, {}), "config", "-q")
    assert result.returncode != 0
    required = (
        "POSTGRES_PASSWORD|GRAFANA_ADMIN_PASSWORD|MYAISERV_SEARCH__CURSOR_SECRET"
        "|MYAISERV_CONSOLE__SECRET"
    )
    assert re.search(rf"set ({required}) in \.env", result.stderr)


def test_compose_file_format_works_with_both_compose_generations(raw: dict[str, Any]) -> None:
    # docker-compose 1.29 needs `version` and rejects a top-level `name`.
    assert raw["version"] == "2.4"
    assert "name" not in raw


def test_nginx_is_the_only_public_entry(services: dict[str, dict[str, Any]]) -> None:
    assert ports(services["nginx"]) == [("0.0.0.0", "8080", "80")]
    for name, service in services.items():
        if name == "nginx" or not service.get("ports"):
            continue
        assert name in MONITORING_UIS, f"{name} publishes ports"
        assert all(host == "127.0.0.1" for host, _, _ in ports(service)), name
    assert depends_on(services["nginx"]) == {"web": "service_healthy"}
    nginx_mounts = volumes(services["nginx"])
    assert Path(nginx_mounts["/etc/nginx/nginx.conf"]).resolve() == NGINX_CONF


def test_web_scales_behind_nginx(raw: dict[str, Any], services: dict[str, Any]) -> None:
    web = services["web"]
    assert not web.get("ports")
    assert "container_name" not in web  # a fixed name would forbid --scale
    assert raw["services"]["web"]["scale"] == "${WEB_SCALE:-2}"
    assert replicas(web) == 2
    env = environment(web)
    assert env["MYAISERV_WORKERS"] == "2"
    assert env["FORWARDED_ALLOW_IPS"] == "*"
    assert command(web) == ["myaiserv", "serve"]
    # nginx and web share a network; nginx reaches nothing else.
    assert set(services["nginx"]["networks"]) <= set(web["networks"])
    assert not set(services["nginx"]["networks"]) & set(services["postgres"]["networks"])


def test_indexer_scales_and_serves_metrics(services: dict[str, Any]) -> None:
    indexer = services["indexer"]
    assert command(indexer) == ["myaiserv", "indexer", "run"]
    assert replicas(indexer) == 1
    assert not indexer.get("ports")
    assert environment(indexer)["MYAISERV_INDEXING__METRICS_PORT"] == "9101"
    assert "9101" in " ".join(healthcheck_test(indexer))


def test_app_services_share_one_image_and_one_environment(services: dict[str, Any]) -> None:
    apps = app_services(services)
    assert set(apps) == {"web", "indexer", "migrate"}
    assert len({svc["image"] for svc in apps.values()}) == 1
    assert all(svc["build"]["dockerfile"] == "docker/Dockerfile" for svc in apps.values())
    shared = environment(apps["migrate"])
    for name, service in apps.items():
        env = environment(service)
        assert {k: env.get(k) for k in shared} == shared, name
    assert shared["ES_URL"] == "https://es01:9200,https://es02:9200,https://es03:9200"
    # As the user es-setup makes, trusting the CA it made (the certs volume, read-only).
    assert shared["MYAISERV_ES__USERNAME"] == "myaiserv"
    assert shared["MYAISERV_ES__PASSWORD"] == SECRETS["MYAISERV_ES__PASSWORD"]
    assert shared["MYAISERV_ES__CA_CERTS"] == "/certs/ca/ca.crt"
    for name, service in apps.items():
        assert volumes(service)["/certs"] == "certs", name
    assert shared["MYAISERV_ES__REPLICAS"] == "1"
    # The primary as the Sentinels name it.
    assert shared["REDIS_URL"] == (
        "redis+sentinel://redis-sentinel-1:26379,redis-sentinel-2:26379,redis-sentinel-3:26379"
        "/myaiserv/0"
    )
    assert shared["DATABASE_URL"] == (
        f"postgresql+asyncpg://myaiserv:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/myaiserv"
    )
    assert environment(services["postgres"])["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=shared["DATABASE_URL"],
        redis_url=shared["REDIS_URL"],
        es_url=shared["ES_URL"],
    )
    assert settings.es_url == [f"https://{node}:9200" for node in ES_NODES]


def test_every_app_service_waits_for_migrate_and_the_stores(services: dict[str, Any]) -> None:
    stores = {"postgres": "service_healthy", "redis": "service_healthy"}
    stores |= dict.fromkeys(REDIS_SENTINELS, "service_healthy")
    stores |= dict.fromkeys(ES_NODES, "service_healthy")
    # es-setup has made the user the app logs in as.
    stores["es-setup"] = "service_completed_successfully"
    for name in ("web", "indexer"):
        assert depends_on(services[name]) == {
            "migrate": "service_completed_successfully",
            **stores,
        }, name
    migrate = services["migrate"]
    assert depends_on(migrate) == stores
    assert command(migrate) == ["sh", "-c", "myaiserv db upgrade && myaiserv index init"]
    assert migrate["restart"] == "no"


def test_elasticsearch_is_one_cluster_of_three(services: dict[str, Any]) -> None:
    clusters = set()
    data = set()
    for node in ES_NODES:
        service = services[node]
        assert service["image"] == "docker.elastic.co/elasticsearch/elasticsearch:9.2.4"
        env = environment(service)
        clusters.add(env["cluster.name"])
        assert env["node.name"] == node
        assert env["discovery.seed_hosts"].split(",") == list(ES_NODES)
        assert env["cluster.initial_master_nodes"].split(",") == list(ES_NODES)
        # Security on: TLS on HTTP and transport with this node's own certificate.
        assert env["xpack.security.enabled"] == "true"
        for layer in ("http", "transport"):
            assert env[f"xpack.security.{layer}.ssl.enabled"] == "true"
            assert env[f"xpack.security.{layer}.ssl.certificate"] == f"certs/{node}/{node}.crt"
            assert env[f"xpack.security.{layer}.ssl.key"] == f"certs/{node}/{node}.key"
        assert env["ELASTIC_PASSWORD"] == SECRETS["ELASTIC_PASSWORD"]
        assert volumes(service)["/usr/share/elasticsearch/config/certs"] == "certs"
        assert depends_on(service) == {"es-setup": "service_healthy"}
        assert "https://localhost:9200" in " ".join(healthcheck_test(service))
        assert env["bootstrap.memory_lock"] == "true"
        assert "-Xms1g" in env["ES_JAVA_OPTS"] and "-Xmx1g" in env["ES_JAVA_OPTS"]
        assert service["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
        assert not service.get("ports")
        data.add(volumes(service)["/usr/share/elasticsearch/data"])
    assert clusters == {"myaiserv"}
    assert len(data) == 3


def redis_server_args(service: dict[str, Any]) -> list[str]:
    """The redis-server arguments a node's start script ends with (after the config file
    it writes with the password)."""
    script = command(service)[-1]
    line = script[script.index("exec redis-server") :].replace("\\\n", " ")
    return shlex.split(line)[2:]


def test_redis_replicas_follow_the_primary(services: dict[str, Any]) -> None:
    primary = redis_server_args(services["redis"])
    assert "--replicaof" not in primary
    for name in REDIS_REPLICAS:
        cmd = redis_server_args(services[name])
        at = cmd.index("--replicaof")
        assert cmd[at + 1 : at + 3] == ["redis", "6379"], name
        assert depends_on(services[name]) == {"redis": "service_healthy"}
        assert services[name]["image"] == services["redis"]["image"] == "redis:7"
        # Each node announces its service name, which survives a container's restart.
        announce = cmd[cmd.index("--replica-announce-ip") + 1]
        assert announce in ("$REDIS_ANNOUNCE", "$$REDIS_ANNOUNCE")
        assert environment(services[name])["REDIS_ANNOUNCE"] == name
        assert cmd[:at] + cmd[at + 3 : -2] == primary[:-2], name  # the same settings
    assert primary[primary.index("--replica-announce-ip") + 1] == "redis"
    # Only TTL'd keys may be evicted (caches and counters all have one).
    policy = primary[primary.index("--maxmemory-policy") + 1]
    assert policy == "volatile-lru"


def test_redis_asks_for_a_password_the_app_and_sentinels_are_given(
    services: dict[str, Any],
) -> None:
    password = SECRETS["REDIS_PASSWORD"]
    for name in ("redis", *REDIS_REPLICAS):
        script = command(services[name])[-1]
        # requirepass and masterauth from the environment, in a file: not on the command line.
        assert "requirepass" in script and "masterauth" in script, name
        assert redis_server_args(services[name])[0].endswith("auth.conf"), name
        assert password not in script, name
        env = environment(services[name])
        assert env["REDIS_PASSWORD"] == env["REDISCLI_AUTH"] == password, name
    for name in REDIS_SENTINELS:
        assert "sentinel auth-pass myaiserv $" in command(services[name])[-1], name
        assert environment(services[name])["REDIS_PASSWORD"] == password
    for name in ("web", "indexer", "migrate"):
        assert environment(services[name])["MYAISERV_REDIS__PASSWORD"] == password


def test_three_sentinels_watch_the_primary_under_the_name_redis_url_gives(
    services: dict[str, Any],
) -> None:
    master = Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=environment(services["web"])["REDIS_URL"],
    ).redis_url.rsplit("/", 2)[1]
    for name in REDIS_SENTINELS:
        script = command(services[name])[-1]
        assert f"sentinel monitor {master} redis 6379 2" in script, name
        assert "sentinel announce-hostnames yes" in script
        assert "exec redis-server /tmp/sentinel.conf --sentinel" in script
        assert "sentinel down-after-milliseconds myaiserv 5000" in script  # .env.example's
        assert depends_on(services[name]) == {"redis": "service_healthy"}
        assert "ckquorum" in " ".join(healthcheck_test(services[name]))


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "migrate":
            assert healthcheck_test(service) == ["NONE"]  # one-shot: the image's is off
            continue
        if name == "es-setup":  # one-shot: healthy once the certificates exist
            assert service["restart"] == "no"
            assert healthcheck_test(service)
            continue
        test = healthcheck_test(service)
        assert test and test != ["NONE"], f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_monitoring_mounts_the_monitoring_folder(services: dict[str, Any]) -> None:
    expected = {
        "prometheus": {
            "/etc/prometheus/prometheus.yml": MONITORING / "prometheus.yml",
            "/etc/prometheus/rules": MONITORING / "rules",
        },
        "alertmanager": {"/etc/alertmanager/alertmanager.yml": MONITORING / "alertmanager.yml"},
        "grafana": {
            "/etc/grafana/provisioning": MONITORING / "grafana" / "provisioning",
            "/var/lib/grafana/dashboards": MONITORING / "grafana" / "dashboards",
        },
    }
    for name, mounts in expected.items():
        found = volumes(services[name])
        for target, source in mounts.items():
            assert Path(found[target]).resolve() == source.resolve(), (name, target)
    password = environment(services["grafana"])["GF_SECURITY_ADMIN_PASSWORD"]
    assert password == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    # Grafana's dashboard provider reads the folder where compose mounts the JSON files.
    for provider_file in (MONITORING / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"):
        for provider in yaml.safe_load(provider_file.read_text()).get("providers", []):
            assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    # Prometheus finds its targets by compose service names.
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    names = {
        name
        for job in config.get("scrape_configs", [])
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    assert names <= set(services), names - set(services)


def test_jaeger_takes_the_apps_spans_and_shows_them_on_loopback(
    services: dict[str, Any],
) -> None:
    """web and the indexers export to Jaeger's OTLP/HTTP receiver on the backend network;
    its UI (where the app's trace links point) is published on the host's loopback only;
    its store is in memory and bounded; nothing waits for it."""
    jaeger = services["jaeger"]
    assert re.fullmatch(r"jaegertracing/jaeger:2\.\d+\.\d+", jaeger["image"])  # v2, pinned
    assert set(jaeger["networks"]) == {"backend", "ops"}
    assert ports(jaeger) == [("127.0.0.1", "16686", "16686")]
    assert (
        Path(volumes(jaeger)["/etc/jaeger/config.yaml"]).resolve()
        == (MONITORING / "jaeger.yaml").resolve()
    )
    assert command(jaeger) == ["--config", "/etc/jaeger/config.yaml"]
    assert int(jaeger["mem_limit"]) == 1073741824  # .env.example's JAEGER_MEM_LIMIT
    assert environment(jaeger)["JAEGER_MAX_TRACES"] == "50000"
    for name in ("web", "indexer"):
        env = environment(services[name])
        assert env["MYAISERV_TRACING__EXPORTER"] == "otlp", name
        assert env["MYAISERV_TRACING__ENDPOINT"] == "http://jaeger:4318/v1/traces", name
        assert env["MYAISERV_TRACING__UI_URL"] == "http://127.0.0.1:16686/trace/{trace_id}"
    assert all("jaeger" not in depends_on(svc) for svc in services.values())

    config = yaml.safe_load((MONITORING / "jaeger.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert config["receivers"]["otlp"]["protocols"] == {"http": {"endpoint": "0.0.0.0:4318"}}
    assert pipeline["exporters"] == ["jaeger_storage_exporter"]
    store = config["exporters"]["jaeger_storage_exporter"]["trace_storage"]
    extensions = config["extensions"]
    assert extensions["jaeger_query"]["storage"]["traces"] == store
    assert extensions["jaeger_query"]["http"]["endpoint"] == "0.0.0.0:16686"
    # In memory, bounded by the variable compose gives the container.
    assert extensions["jaeger_storage"]["backends"][store] == {
        "memory": {"max_traces": "${env:JAEGER_MAX_TRACES:-50000}"}
    }
    assert set(config["service"]["extensions"]) == set(extensions)
    # The healthcheck asks the health extension, which listens inside the container only.
    health = extensions["healthcheckv2"]["http"]["endpoint"]
    assert health == "127.0.0.1:13133"
    assert f"http://{health}/status" in healthcheck_test(jaeger)


# -- .env.example ----------------------------------------------------------------------


def test_env_example_documents_every_variable_compose_reads(raw: dict[str, Any]) -> None:
    documented = set(example_values(commented=True))
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    passed_through = {
        key
        for service in raw["services"].values()
        for key, value in environment(service).items()
        if value is None
    }
    assert passed_through, "the app environment passes no settings through"
    assert interpolated - documented == set()
    assert passed_through - documented == set()
    # ...and everything it lists reaches Compose or the app.
    assert documented - interpolated - passed_through - COMPOSE_OWN == set()


def test_env_example_settings_are_real_settings() -> None:
    for key in example_values(commented=True):
        if key.startswith("MYAISERV_") and key not in COMPOSE_ONLY:
            assert is_setting(key), f"{key} is not a setting (a typo is silently ignored)"
    assert example_values(commented=False)["POSTGRES_PASSWORD"] == ""  # set by the operator


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith("MYAISERV_") or key.upper() in SEED_VARIABLES:
            monkeypatch.delenv(key)
    return monkeypatch


def test_env_example_examples_load(clean_env: pytest.MonkeyPatch) -> None:
    """The commented examples, uncommented, are valid settings (JSON, alias targets)."""
    for key, value in example_values(commented=True).items():
        if key.startswith("MYAISERV_") and value:  # empty ones are secrets left to fill
            clean_env.setenv(key, value)
    clean_env.setenv("MYAISERV_ES__PASSWORD", "es-app-secret")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert {p.name for p in settings.llm.providers} == {"openai", "local"}
    assert settings.llm.aliases["myaiserv-rag"].targets[0] == "openai/gpt-4o-mini"
    assert settings.search.metadata_fields == {"year": "long", "lang": "keyword"}
    assert settings.es.replicas == 1


def test_env_example_commented_values_are_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    defaults = Settings(_env_file=None).model_dump()  # type: ignore[call-arg]
    for key, value in commented_examples().items():
        if not value.startswith(("{", "[")):  # JSON lines are examples, not defaults
            clean_env.setenv(key, value)
    assert Settings(_env_file=None).model_dump() == defaults  # type: ignore[call-arg]


# -- Dockerfile and build context ------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuations joined, comments dropped) grouped by stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    in_heredoc = None
    for line in text.splitlines():
        if in_heredoc:
            if line.strip() == in_heredoc:
                in_heredoc = None
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if heredoc := re.search(r"<<-?'?(\w+)'?\s*$", stripped):
            in_heredoc = heredoc.group(1)
        if stripped.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(stripped)
    return stages


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(re.match(r"FROM \S+ AS \w+", stage[0], re.IGNORECASE) for stage in stages)
    final = stages[-1]

    def instructions(name: str) -> list[str]:
        return [line for line in final if line.upper().startswith(name + " ")]

    users = instructions("USER")
    assert users, "the final stage sets no USER"
    assert users[-1].split()[1].split(":")[0] not in {"root", "0"}
    assert "10001" in users[-1]
    (healthcheck,) = instructions("HEALTHCHECK")
    assert "/health" in healthcheck and "python" in healthcheck
    assert instructions("CMD")[-1] == 'CMD ["myaiserv", "serve"]'
    assert instructions("EXPOSE") == ["EXPOSE 8000"]
    env = " ".join(instructions("ENV"))
    for setting in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "PROMETHEUS_MULTIPROC_DIR="):
        assert setting in env
    assert any(line.startswith("COPY --from=build") for line in final)
    # The ONNX file the builder exported ships in the image: containers load, not export.
    onnx_dir = "MYAISERV_EMBEDDING__ONNX_CACHE_DIR=/app/onnx"
    assert onnx_dir in env and onnx_dir in " ".join(stages[0])
    assert any(
        line.startswith("COPY --from=build") and line.endswith("/app/onnx /app/onnx")
        for line in final
    )
    # The builder installs from the lock, with Poetry pinned.
    builder = " ".join(stages[0])
    assert re.search(r"POETRY_VERSION=\d+\.\d+\.\d+", builder)
    assert "poetry.lock" in builder


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # an allow-list: nothing enters unless named
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert not allowed & {".env", ".venv", ".stack", ".git"}
    # Test and benchmark code never enters the image.
    assert not allowed & {"tooling", "tests", "bench"}
    copied = set()
    for stage in dockerfile_stages():
        for line in stage:
            if line.startswith("COPY ") and "--from=" not in line:
                copied |= set(line.split()[1:-1])
    assert copied <= allowed, copied - allowed


# -- nginx -----------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        pytest.fail("nginx not found: run scripts/system-deps.sh")
    return found


def nginx_prefix(folder: Path, text: str) -> Path:
    """``text`` as nginx.conf in a prefix of its own: temp folders inside it (the
    packaged defaults may not be writable), the MIME types beside it as in the image."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = "".join(
        f"\n    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text, count = re.subn(r"^http \{", "http {" + temp, text, count=1, flags=re.MULTILINE)
    assert count == 1
    mime = Path("/etc/nginx/mime.types")
    (folder / "mime.types").write_text(
        mime.read_text() if mime.exists() else "types { application/json json; }\n"
    )
    conf = folder / "nginx.conf"
    conf.write_text(text)
    return conf


def test_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    """The file as shipped. The upstream is named in a variable, so nginx resolves `web`
    per request through Docker's DNS and `nginx -t` needs no DNS here: a plain
    `proxy_pass http://web:8000` (resolved once, at start) would fail this check."""
    conf = nginx_prefix(tmp_path, NGINX_CONF.read_text())
    result = subprocess.run(
        [
            nginx_binary(),
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-g",
            f"pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_body_limit_matches_the_app() -> None:
    size = re.search(r"client_max_body_size (\d+)m;", NGINX_CONF.read_text())
    assert size, "client_max_body_size not set in megabytes"
    assert int(size.group(1)) * 1024 * 1024 == LimitSettings().max_request_bytes


class StandIn(BaseHTTPRequestHandler):
    """A web instance: echoes the headers it got, streams two server-sent events with a
    pause between them (the second waits until the test has read the first)."""

    release = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, b"myaiserv_secret 1\n", "text/plain")
            return
        body = json.dumps(
            {
                "instance": self.server.server_address[0],
                "path": self.path,
                "headers": dict(self.headers.items()),
            }
        )
        self._send(200, body.encode(), "application/json")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # no length: the body ends when the connection closes
        self.wfile.write(b"data: first\n\n")
        self.wfile.flush()
        type(self).release.wait(10)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@contextmanager
def run_nginx(
    folder: Path, upstream_port: int, *, upstream_host: str = "127.0.0.1", dns_port: int = 0
) -> Iterator[tuple[str, Path]]:
    """The shipped config on loopback ports; with ``dns_port``, `web` is looked up at
    that DNS server instead of Docker's."""
    port = free_port()
    text = NGINX_CONF.read_text()
    replacements = [
        ("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;"),
        ('"http://web:8000"', f'"http://{upstream_host}:{upstream_port}"'),
        ("access_log /dev/stdout json;", f"access_log {folder / 'access.log'} json;"),
    ]
    if dns_port:
        replacements.append(("resolver 127.0.0.11 ", f"resolver 127.0.0.1:{dns_port} "))
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    conf = nginx_prefix(folder, text)
    settings = (
        f"pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'}; "
        "daemon off; master_process off;"
    )
    process = subprocess.Popen(
        [nginx_binary(), "-p", str(folder), "-c", str(conf), "-g", settings],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _, err = process.communicate(timeout=5)
                    pytest.fail(f"nginx did not start: {err.decode()}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", folder / "access.log"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with run_nginx(tmp_path_factory.mktemp("nginx"), server.server_address[1]) as running:
            yield running
    finally:
        StandIn.release.set()
        server.shutdown()
        server.server_close()


def test_nginx_passes_request_id_and_client_address(edge: tuple[str, Path]) -> None:
    url, access_log = edge
    response = httpx.get(
        f"{url}/v1/search?q=x",
        headers={"X-Request-ID": "req-123", "X-Forwarded-For": "6.6.6.6", "Host": "api.test"},
    )
    assert response.status_code == 200
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert response.json()["path"] == "/v1/search?q=x"
    assert seen["x-request-id"] == response.headers["x-request-id"] == "req-123"
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the client's own claim is dropped
    assert seen["host"] == "api.test"
    assert seen["x-forwarded-proto"] == "http"
    # A malformed id is replaced by nginx's own, used end to end.
    response = httpx.get(f"{url}/v1/search", headers={"X-Request-ID": "x" * 200})
    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert seen["x-request-id"] == generated
    # The access log is one JSON object per line, with the id (written after the response).
    deadline = time.monotonic() + 5
    while generated not in access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    entries = [json.loads(line) for line in access_log.read_text().splitlines()]
    (entry,) = [e for e in entries if e["request_id"] == generated]
    assert (entry["status"], entry["method"], entry["uri"]) == (200, "GET", "/v1/search")


def test_nginx_health_and_metrics_stay_at_the_edge(edge: tuple[str, Path]) -> None:
    url, _ = edge
    health = httpx.get(f"{url}/nginx-health")
    assert (health.status_code, health.text) == (200, "ok\n")
    assert httpx.get(f"{url}/metrics").status_code == 404


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/mcp"])
def test_nginx_streams_chat_completions_and_mcp_unbuffered(
    edge: tuple[str, Path], path: str
) -> None:
    """The stand-in holds its second event until the first has arrived here: buffered,
    the first would not arrive before the read timeout."""
    url, _ = edge
    StandIn.release.clear()
    with httpx.stream("POST", f"{url}{path}", json={"stream": True}, timeout=3) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines) == "data: first"
        StandIn.release.set()
        assert [line for line in lines if line] == ["data: [DONE]"]


def test_nginx_answers_problem_json_when_no_instance_answers(tmp_path: Path) -> None:
    with run_nginx(tmp_path, free_port()) as (url, _):  # nothing listens there
        response = httpx.get(f"{url}/v1/search")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
        assert response.json()["status"] == 503


class DockerDNS(threading.Thread):
    """Docker's embedded DNS in miniature: `web` resolves to one A record per instance."""

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(daemon=True)
        self.addresses = addresses
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                query, client = self.sock.recvfrom(512)
            except OSError:
                return
            end = 12
            labels = []
            while query[end]:
                labels.append(query[end + 1 : end + 1 + query[end]].decode())
                end += 1 + query[end]
            question = query[12 : end + 5]
            qtype = int.from_bytes(query[end + 1 : end + 3], "big")
            answers = self.addresses if (labels == ["web"] and qtype == 1) else []
            flags = b"\x81\x80" if answers else b"\x81\x83"  # NOERROR / NXDOMAIN
            header = query[:2] + flags + (1).to_bytes(2, "big")
            header += len(answers).to_bytes(2, "big") + b"\x00\x00\x00\x00"
            records = b"".join(
                b"\xc0\x0c\x00\x01\x00\x01"
                + (5).to_bytes(4, "big")
                + b"\x00\x04"
                + socket.inet_aton(address)
                for address in answers
            )
            self.sock.sendto(header + question + records, client)


def test_nginx_spreads_requests_over_instances_and_skips_a_dead_one(tmp_path: Path) -> None:
    """Two live instances and one that refuses connections, all under the name `web`:
    every request (POSTs too: a refused connection sent nothing) is answered, by both
    live instances, and the dead one is tried and passed over."""
    port = free_port()
    live = ["127.0.0.1", "127.0.0.2"]
    servers = [ThreadingHTTPServer((address, port), StandIn) for address in live]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    dns = DockerDNS([*live, "127.0.0.3"])
    dns.start()
    StandIn.release.set()
    try:
        with run_nginx(tmp_path, port, upstream_host="web", dns_port=dns.port) as (url, log):
            answered = set()
            for _ in range(30):
                response = httpx.get(f"{url}/v1/search", timeout=10)
                assert response.status_code == 200
                answered.add(response.json()["instance"])
            for _ in range(10):
                response = httpx.post(f"{url}/v1/chat/completions", json={}, timeout=10)
                assert response.status_code == 200
            assert answered == set(live)
            time.sleep(0.2)
            tried = [json.loads(line)["upstream_addr"] for line in log.read_text().splitlines()]
            assert any(addr.startswith(f"127.0.0.3:{port}, ") for addr in tried), tried
    finally:
        dns.sock.close()
        for server in servers:
            server.shutdown()
            server.server_close()


# -- the local override (docker/local/compose.local.yml) --------------------------------

LOCAL_OVERRIDE = ROOT / "docker" / "local" / "compose.local.yml"


def test_the_local_override_replaces_every_public_image_and_nothing_else() -> None:
    """Where no registry can be reached, each service that runs a public image runs a
    local stand-in instead (Grafana and Jaeger, which have none, only under their
    profiles); the override touches images and this machine's limits, never the
    topology itself. Without Jaeger, web and the indexer trace nothing."""
    base = yaml.safe_load(COMPOSE.read_text())["services"]
    local = yaml.safe_load(LOCAL_OVERRIDE.read_text())["services"]
    public = {name for name, svc in base.items() if "build" not in svc}
    traced = {"web", "indexer"}
    assert set(local) == public | traced
    for name in traced:
        assert local[name] == {"environment": {"MYAISERV_TRACING__EXPORTER": "none"}}
    for name, svc in local.items():
        if name in traced:
            continue
        if name in ("grafana", "jaeger"):
            assert svc == {"profiles": [name]}
            continue
        assert svc["image"].startswith("localhost/myaiserv-local/"), name
        assert set(svc) <= {"image", "ulimits", "environment"}, name
    # Only Elasticsearch gets more: this machine's limits and the transport relay.
    for node in ES_NODES:
        env = local[node]["environment"]
        assert env["MYAISERV_ES_TRANSPORT_RELAY"] == "es01:9301,es02:9302,es03:9303"
        assert local[node]["ulimits"]["nofile"] == {"soft": 20000, "hard": 20000}
