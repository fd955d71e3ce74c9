"""What a local stack is: its folder, its ports and its versions, kept in ``stack.json``.

The local stack is the Docker-free twin of ``docker-compose.yml``: the same real servers
(Elasticsearch, PostgreSQL, Redis; Zipkin for traces, where the topology has Jaeger) on
loopback, their data and logs in one folder the project owns. Everything here is standard
library so that the stack can be managed before (and independently of) the application's
heavier imports.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_STACK_DIR = Path(".stack")
STATE_FILE = "stack.json"

# 9.3.0 answers 404 on Maven Central (checked 2026-11-23); 9.2.4's integ-test zip is there.
DEFAULT_ES_VERSION = "9.2.4"
ES_ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
# Zipkin's self-contained server (the `exec` jar: its UI, collector and in-memory store).
DEFAULT_ZIPKIN_VERSION = "3.4.4"
ZIPKIN_ARTIFACT = "io.zipkin:zipkin-server:{version}:jar:exec"


@dataclass
class ElasticsearchConfig:
    version: str = DEFAULT_ES_VERSION
    nodes: int = 1
    http_port: int = 19200
    transport_port: int = 19300
    heap: str = "512m"
    cluster_name: str = "myaiserv-local"
    # x-pack security (`stack up --secure`): TLS on HTTP and transport, and a file-realm
    # user for MyAIServ whose role reaches only the `{index_prefix}-*` indices.
    security: bool = False
    user: str = "myaiserv"
    password: str = ""
    index_prefix: str = "myaiserv"

    def http_ports(self) -> list[int]:
        return [self.http_port + i for i in range(self.nodes)]

    def transport_ports(self) -> list[int]:
        return [self.transport_port + i for i in range(self.nodes)]

    def node_names(self) -> list[str]:
        return [f"node-{i + 1}" for i in range(self.nodes)]

    def urls(self) -> list[str]:
        scheme = "https" if self.security else "http"
        return [f"{scheme}://127.0.0.1:{p}" for p in self.http_ports()]


@dataclass
class PostgresConfig:
    port: int = 54320
    user: str = "myaiserv"
    password: str = "myaiserv"  # noqa: S105 - a loopback-only development server
    database: str = "myaiserv"

    def url(self, database: str | None = None) -> str:
        return (
            f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/"
            f"{database or self.database}"
        )


@dataclass
class RedisConfig:
    """One Redis (``replicas`` 0), or a primary with replicas on the next ports and three
    Sentinels from ``sentinel_port`` on: then clients find the primary through them.

    Sentinel's timings are set for a quick failover on one machine: a primary that has not
    answered for ``down_after_ms`` is down once two Sentinels agree, and a failover that has
    not finished within ``failover_timeout_ms`` is retried (Redis' defaults: 30 s, 3 min).
    """

    port: int = 63790
    replicas: int = 0
    sentinel_port: int = 26379
    sentinels: int = 3
    master_name: str = "myaiserv"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 2000

    def node_ports(self) -> list[int]:
        """The primary's port first (the primary at start; a failover moves it)."""
        return [self.port + i for i in range(self.replicas + 1)]

    def sentinel_ports(self) -> list[int]:
        return [self.sentinel_port + i for i in range(self.sentinels)] if self.replicas else []

    password: str = ""  # requirepass (`stack up --secure`); empty: none

    def url(self, db: int = 0) -> str:
        if not self.replicas:
            return f"redis://127.0.0.1:{self.port}/{db}"
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports())
        return f"redis+sentinel://{hosts}/{self.master_name}/{db}"


@dataclass
class WebConfig:
    """API instances and indexers behind nginx (0 instances: none; `make run` serves
    one instance itself)."""

    instances: int = 0
    port: int = 18000  # nginx
    first_instance_port: int = 18001
    workers: int = 1  # server workers per instance
    indexers: int = 1
    first_indexer_metrics_port: int = 19101


@dataclass
class ZipkinConfig:
    """Zipkin, where the app's traces go in the local stack (the topology has Jaeger).

    Spans are kept in memory only, at most ``max_spans`` of them (the oldest traces go
    first): traces are for looking at what just happened, not for keeping.
    """

    version: str = DEFAULT_ZIPKIN_VERSION
    port: int = 19411
    # A traced search is about a dozen spans; 50,000 spans, a few thousand requests, fit
    # this heap with room (100,000 in 256 MB ran out of memory under the test suite).
    heap: str = "768m"
    max_spans: int = 50_000

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tracing_env(self) -> dict[str, str]:
        """The app's settings that send its spans here and link to their pages."""
        return {
            "MYAISERV_TRACING__EXPORTER": "zipkin",
            "MYAISERV_TRACING__ENDPOINT": f"{self.url}/api/v2/spans",
            "MYAISERV_TRACING__UI_URL": f"{self.url}/zipkin/traces/{{trace_id}}",
        }


SERVICES = ("elasticsearch", "postgres", "redis", "zipkin")


@dataclass
class StackConfig:
    dir: Path = DEFAULT_STACK_DIR
    services: tuple[str, ...] = SERVICES
    elasticsearch: ElasticsearchConfig = field(default_factory=ElasticsearchConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    web: WebConfig = field(default_factory=WebConfig)
    zipkin: ZipkinConfig = field(default_factory=ZipkinConfig)

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def env(self) -> dict[str, str]:
        """The variables the application's settings read (see ``myaiserv.config``)."""
        env: dict[str, str] = {}
        if "postgres" in self.services:
            env["DATABASE_URL"] = self.postgres.url()
        if "redis" in self.services:
            env["REDIS_URL"] = self.redis.url()
            if self.redis.password:
                env["MYAISERV_REDIS__PASSWORD"] = self.redis.password
        if "elasticsearch" in self.services:
            es = self.elasticsearch
            env["ES_URL"] = ",".join(es.urls())
            if es.security:
                env["MYAISERV_ES__USERNAME"] = es.user
                env["MYAISERV_ES__PASSWORD"] = es.password
                env["MYAISERV_ES__CA_CERTS"] = str(self.es_ca_certs)
        if "zipkin" in self.services:
            env |= self.zipkin.tracing_env()
        return env

    def secure(self, on: bool) -> None:
        """Security on (passwords made once, then kept in stack.json) or off."""
        es, redis = self.elasticsearch, self.redis
        es.security = on
        es.password = (es.password or secrets.token_urlsafe(18)) if on else ""
        redis.password = (redis.password or secrets.token_urlsafe(18)) if on else ""

    @property
    def es_ca_certs(self) -> Path:
        """The CA that signed the secured nodes' certificates (made by `stack up --secure`)."""
        return (self.dir / "elasticsearch" / "certs" / "ca.crt").resolve()

    def infra_json(self) -> str:
        """The servers' settings: what may not change while they run (the web tier may)."""
        data = json.loads(self.to_json())
        data.pop("web", None)
        return json.dumps(data, sort_keys=True)

    def to_json(self) -> str:
        data = asdict(self)
        data["dir"] = str(self.dir)
        data["services"] = list(self.services)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def load(cls, stack_dir: Path) -> StackConfig | None:
        path = stack_dir / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(
            dir=stack_dir,
            services=tuple(data.get("services", SERVICES)),
            elasticsearch=ElasticsearchConfig(**data.get("elasticsearch", {})),
            postgres=PostgresConfig(**data.get("postgres", {})),
            redis=RedisConfig(**data.get("redis", {})),
            web=WebConfig(**data.get("web", {})),
            zipkin=ZipkinConfig(**data.get("zipkin", {})),
        )

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(self.to_json() + "\n")
        self.state_path.chmod(0o600)  # it may hold the stack's passwords
