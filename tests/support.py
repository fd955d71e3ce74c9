"""Helpers the tests share (fixtures stay in conftest.py): tenants and their keys, console
users and their logins, SQL on the server's admin database, draining the outbox as an
indexer would, a web tier on free ports, a server process, an app served by uvicorn in a
thread, and polling for recovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import uvicorn
from elasticsearch import AsyncElasticsearch
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from myaiserv.auth.service import TenantService
from myaiserv.config import Settings
from myaiserv.console.router import CSRF_COOKIE
from myaiserv.evaluation.harness import free_port
from myaiserv.kit.breaker import CircuitBreaker
from myaiserv.resources import Resources
from myaiserv.search.kinds import KINDS
from myaiserv.search.store import SearchStore
from myaiserv.stack.config import StackConfig, WebConfig
from myaiserv.stack.manager import Stack
from myaiserv.stack.web import WebService
from myaiserv.users.service import UserService
from tooling.ports import free_port_range


def search_store(es: AsyncElasticsearch, resources: Resources, *, timeout_s: float) -> SearchStore:
    """A search store over ``es`` (a client of the test's own, e.g. with a faulty node
    beside the real one) and the session's indices, with a breaker of its own."""
    return SearchStore(
        es,
        resources.indices,
        resources.index_guard,
        pit_keep_alive="1m",
        breaker=CircuitBreaker(failures=3, reset_s=5),
        timeout_s=timeout_s,
    )


async def admin_sql(url: str, statement: str) -> None:
    # A fresh connection each time: tests restart PostgreSQL, which kills pooled ones.
    engine = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@dataclass
class TenantKey:
    id: UUID
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(resources: Resources, scopes: list[str] | None = None) -> TenantKey:
    name = f"t-{uuid.uuid4().hex[:10]}"
    async with resources.sessionmaker() as session, session.begin():
        issued = await TenantService(session).create_tenant(
            name, scopes=scopes or ["read", "write", "admin"]
        )
    return TenantKey(issued.tenant_id, name, issued.plaintext)


@dataclass(frozen=True)
class ConsoleUser:
    tenant: TenantKey
    email: str
    password: str
    role: str


async def make_user(resources: Resources, tenant: TenantKey, role: str = "admin") -> ConsoleUser:
    """A console user of ``tenant`` with its password set, the way a person does it: an
    invitation, then its one-time link."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@{tenant.name}.test"
    password = f"pw-{uuid.uuid4().hex}"
    settings = resources.settings.console
    async with resources.sessionmaker() as session, session.begin():
        link = await UserService(session, settings).invite(tenant.id, email, role)
    token = parse_qs(urlsplit(link.url).query)["token"][0]
    async with resources.sessionmaker() as session, session.begin():
        await UserService(session, settings).set_password(token, password)
    return ConsoleUser(tenant, email, password, role)


def csrf_field(client: httpx.AsyncClient) -> dict[str, str]:
    """The form field a console POST carries (the CSRF cookie's token)."""
    return {"_csrf_token": client.cookies.get(CSRF_COOKIE, path="/console") or ""}


async def console_login(client: httpx.AsyncClient, user: ConsoleUser) -> httpx.Response:
    """Log ``client`` in as ``user`` through the login form; the login's response."""
    await client.get("/console/login")
    form: dict[str, Any] = {"email": user.email, "password": user.password, **csrf_field(client)}
    return await client.post("/console/login", data=form)


def process_env(settings: Settings) -> dict[str, str]:
    """The variables that give a server or CLI process these settings' database, Redis
    database and namespace, and indices (with their analysis settings); tracing as these
    settings have it (off, unless a test turns it on), not as the stack's .env."""
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "ES_URL": ",".join(settings.es_url),
        "MYAISERV_ES__INDEX_PREFIX": settings.es.index_prefix,
        "MYAISERV_REDIS__NAMESPACE": settings.redis.namespace,
        "MYAISERV_SEARCH__METADATA_FIELDS": json.dumps(settings.search.metadata_fields),
        "MYAISERV_TRACING__EXPORTER": settings.tracing.exporter,
        "LOG_LEVEL": "WARNING",
    }


ROOT = Path(__file__).resolve().parents[1]


def operator_cli(
    settings: Settings, cwd: Path, *, timeout: float = 300, **env: str
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``myaiserv ARGS`` as an operator runs it: a bare environment holding these
    settings (``env``: more variables) and a folder of its own, with no ``.env`` in it."""
    variables = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(ROOT),
        **process_env(settings),
        **env,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "myaiserv", *args],
            env=variables,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def indexer_process(settings: Settings, **env: str) -> subprocess.Popen[str]:
    """`myaiserv indexer run` on these settings' stores and indices (the same analysis
    settings as the test indices, or it refuses them), metrics on a free port; ``env``:
    more variables. Its stderr is a pipe: read it only once it has ended."""
    from myaiserv.evaluation.harness import free_port

    variables = {k: v for k, v in os.environ.items() if not k.startswith("MYAISERV_")}
    variables.update(
        **process_env(settings), MYAISERV_INDEXING__METRICS_PORT=str(free_port()), **env
    )
    return subprocess.Popen(
        [sys.executable, "-m", "myaiserv", "indexer", "run"],
        env=variables,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def web_tier(
    stack: Stack, settings: Settings, root: Path, instances: int, **env: str
) -> WebService:
    """``instances`` API instances + one indexer + nginx on free ports, in ``root``, on
    this session's database, Redis database and index prefix; ``env``: more settings."""
    config = StackConfig(
        dir=stack.config.dir,
        elasticsearch=stack.config.elasticsearch,
        postgres=stack.config.postgres,
        redis=stack.config.redis,
        web=WebConfig(
            instances=instances,
            port=free_port(),
            first_instance_port=free_port_range(instances),  # instance ports are consecutive
            first_indexer_metrics_port=free_port(),
        ),
    )
    return WebService(
        root,
        config,
        extra_env={**process_env(settings), **env},
    )


async def drain(resources: Resources) -> int:
    """Index everything due (as a running indexer would), then make it searchable."""
    from indexers.worker import Worker

    done = await Worker(resources, name="test").drain(idle_exit=True)
    for kind in KINDS:
        await resources.es.indices.refresh(index=resources.indices.alias(kind))
    return done


async def outbox_rows(resources: Resources, tenant_id: UUID) -> int:
    """The tenant's outbox rows still to index."""
    from sqlalchemy import func, select

    from myaiserv.db.models import OutboxEvent

    async with resources.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count(OutboxEvent.id)).where(OutboxEvent.tenant_id == tenant_id)
            )
            or 0
        )


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within: float = 60, interval: float = 0.5
) -> bool:
    """Poll until ``probe`` is true; for recovery after a dependency restarts."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await probe():
            return True
        await asyncio.sleep(interval)
    return await probe()


def zipkin_url() -> str:
    """The local stack's Zipkin (MYAISERV_STACK_DIR, else .stack), which tracing tests
    export to and read back from."""
    stack_dir = Path(os.environ.get("MYAISERV_STACK_DIR", ".stack"))
    config = StackConfig.load(stack_dir)
    if config is None or "zipkin" not in config.services:
        raise RuntimeError(
            f"the stack in {stack_dir} runs no Zipkin: "
            "`myaiserv stack up --services elasticsearch,postgres,redis,zipkin`"
        )
    return config.zipkin.url


async def zipkin_trace(
    trace_id: str, done: Callable[[list[dict[str, Any]]], bool], *, within: float = 60
) -> list[dict[str, Any]]:
    """The spans Zipkin holds for ``trace_id``, polled until ``done(spans)`` holds (the
    exporters send in batches), or what it holds after ``within`` seconds."""
    spans: list[dict[str, Any]] = []

    async def probe() -> bool:
        nonlocal spans
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{zipkin_url()}/api/v2/trace/{trace_id}")
        spans = resp.json() if resp.status_code == 200 else []
        return done(spans)

    await eventually(probe, within=within)
    return spans


def tracing_env(service: str, **more: str) -> dict[str, str]:
    """Variables that turn a process's tracing on, exporting to the test Zipkin quickly."""
    return {
        "MYAISERV_TRACING__EXPORTER": "zipkin",
        "MYAISERV_TRACING__ENDPOINT": f"{zipkin_url()}/api/v2/spans",
        "MYAISERV_TRACING__SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms between exports (default 5 s)
        **more,
    }


@contextlib.contextmanager
def served(settings: Settings, folder: Path, **env: str) -> Iterator[tuple[str, Path]]:
    """``myaiserv serve`` as a real process on these settings (``env``: more variables);
    its base URL and the file its output goes to. Waits until it answers HTTP."""
    port = free_port()
    variables = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(ROOT),
        **process_env(settings),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **env,
    }
    output = folder / "serve.log"
    with output.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "myaiserv", "serve"],
            env=variables,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/health", timeout=5)
                break
            time.sleep(0.3)
        assert proc.poll() is None, output.read_text()[-3000:]
        yield url, output
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # still embedding a batch nobody waits for
            proc.kill()
            proc.wait(timeout=20)


@contextlib.contextmanager
def uvicorn_thread(app: Litestar) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port, in a thread of its own (lifespan and
    all): real HTTP for clients that need a server, sharing the test's loaded model. Its
    base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
