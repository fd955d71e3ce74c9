"""What the benchmarks share: settings of their own (database, Redis database, index
prefix, so they never touch your data), the same as environment variables for the child
processes they start, and their database. They run on the local stack in ROOT/.stack, or
in MYAISERV_STACK_DIR when set (a private stack: its servers' URLs replace the settings')."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from myaiserv.config import Settings, load_settings
from myaiserv.db.migrate import prepare_database as prepare_database  # the benchmarks' own
from myaiserv.evaluation.harness import free_port
from myaiserv.stack.config import StackConfig, WebConfig
from myaiserv.stack.elasticsearch import ElasticsearchService
from myaiserv.stack.manager import Stack
from myaiserv.stack.process import read_pid
from myaiserv.stack.web import WebService
from tooling.ports import free_port_range

ROOT = Path(__file__).resolve().parents[1]


def stack_dir() -> Path:
    return Path(os.environ.get("MYAISERV_STACK_DIR") or ROOT / ".stack")


def _base_settings() -> Settings:
    """The settings, on the servers of MYAISERV_STACK_DIR's stack when it is set."""
    if not os.environ.get("MYAISERV_STACK_DIR"):
        return load_settings()
    stack = local_stack_config()
    return load_settings(
        database_url=stack.postgres.url(),
        redis_url=stack.redis.url(),
        es_url=stack.elasticsearch.urls(),
    )


def bench_settings(database: str, redis_db: int, prefix: str) -> tuple[Settings, dict[str, str]]:
    base = _base_settings()
    url = make_url(base.database_url).set(database=database)
    settings = load_settings(
        database_url=url.render_as_string(hide_password=False),
        redis_url=base.redis_url.rsplit("/", 1)[0] + f"/{redis_db}",
        es_url=base.es_url,
        es={"index_prefix": prefix},
        redis={"namespace": prefix},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYAISERV_")}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        ES_URL=",".join(settings.es_url),
        MYAISERV_ES__INDEX_PREFIX=prefix,
        MYAISERV_REDIS__NAMESPACE=prefix,
        LOG_LEVEL="WARNING",
        # Measurements, not traffic to police: no request rate limits.
        MYAISERV_RATE_LIMITS__PER_KEY_PER_MINUTE="0",
        MYAISERV_RATE_LIMITS__PER_TENANT_PER_MINUTE="0",
        # Untraced, whatever the stack's .env says (bench.tracing measures what tracing costs).
        MYAISERV_TRACING__EXPORTER="none",
    )
    return settings, env


def peak_rss_mb(pid: int) -> float:
    """VmHWM: a process's resident-set high-water mark, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rounds(default: int = 3) -> int:
    """How many rounds a benchmark repeats its measurements (``BENCH_ROUNDS``)."""
    return max(1, int(os.environ.get("BENCH_ROUNDS", default)))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def local_stack_config() -> StackConfig:
    return StackConfig.load(stack_dir()) or StackConfig(dir=stack_dir())


def web_tier(env: dict[str, str], root: Path, instances: int, *, indexers: int = 1) -> WebService:
    """``instances`` API instances and ``indexers`` indexers behind nginx, on free ports
    and the local stack's servers; ``web.web.port`` is nginx's."""
    config = local_stack_config()
    config.web = WebConfig(
        instances=instances,
        port=free_port(),
        first_instance_port=free_port_range(instances),  # instance ports are consecutive
        indexers=indexers,
        first_indexer_metrics_port=free_port(),
    )
    return WebService(root, config, extra_env=env)


def _free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def private_stack_up(
    folder: Path,
    *,
    es_nodes: int = 1,
    es_heap: str = "512m",
    services: tuple[str, ...] = ("elasticsearch", "postgres", "redis"),
) -> StackConfig:
    """A stack of the benchmark's own in ``folder`` (`myaiserv stack up --dir`), never the
    shared one: its servers on loopback ports free now (a stack restarted from its folder
    keeps its ports where they are still free). Its data stays in ``folder`` until removed;
    stop it with ``private_stack_down``."""
    saved = StackConfig.load(folder)
    es = saved.elasticsearch if saved else None
    if es is None or not _free([*es.http_ports(), *es.transport_ports()]):
        http, transport = free_port_range(es_nodes), free_port_range(es_nodes)
        while set(range(http, http + es_nodes)) & set(range(transport, transport + es_nodes)):
            transport = free_port_range(es_nodes)
    else:
        http, transport = es.http_port, es.transport_port
    pg = saved.postgres.port if saved and _free([saved.postgres.port]) else free_port()
    redis = saved.redis.port if saved and _free([saved.redis.port]) else free_port()
    command = [
        *(sys.executable, "-m", "myaiserv", "stack", "up", "--dir", str(folder)),
        *("--es-nodes", str(es_nodes), "--es-heap", es_heap),
        *("--es-http-port", str(http), "--es-transport-port", str(transport)),
        *("--pg-port", str(pg), "--redis-port", str(redis)),
        *("--services", ",".join(services), "--env-file", "-"),
    ]
    subprocess.run(command, check=True, cwd=ROOT)
    config = StackConfig.load(folder)
    if config is None:
        raise RuntimeError(f"no stack in {folder} after `stack up`")
    return config


def private_stack_down(folder: Path) -> None:
    """Stop the servers of the stack in ``folder`` (its data is kept)."""
    if StackConfig.load(folder) is not None:
        command = [sys.executable, "-m", "myaiserv", "stack", "down", "--dir", str(folder)]
        subprocess.run(command, check=False, cwd=ROOT)


def es_pids(config: StackConfig) -> list[int]:
    """The Elasticsearch server processes of the stack ``config`` describes (its nodes'
    pid files), so that no other Elasticsearch on the machine counts."""
    service = Stack(config).services["elasticsearch"]
    assert isinstance(service, ElasticsearchService)
    return [
        pid
        for name in config.elasticsearch.node_names()
        if (pid := read_pid(service.pidfile(name))) is not None
    ]
