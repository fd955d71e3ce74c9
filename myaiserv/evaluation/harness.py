"""A local MyAIServ for `myaiserv eval` (and the benchmarks): the API (`myaiserv serve`) and
an indexer (`myaiserv indexer run`) as child processes on loopback, exactly as deployed,
with the settings given as environment variables."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myaiserv.auth.repository import TenantRepository
from myaiserv.auth.service import TenantService
from myaiserv.config import Settings


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``myaiserv <args>`` in its own process group, so ``stop`` ends it with its children."""
    return subprocess.Popen(
        [sys.executable, "-m", "myaiserv", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group, then SIGKILL what is still there after 30 s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@asynccontextmanager
async def local_api(
    env_overrides: dict[str, str], *, indexer: bool = True, start_timeout_s: float = 300
) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start the API (and an indexer); yields the API's base URL and its process once
    ``/ready`` answers 200."""
    port = free_port()
    env = {
        **os.environ,
        "LOG_LEVEL": "WARNING",
        # Measurements, not traffic to police: no request rate limits.
        "MYAISERV_RATE_LIMITS__PER_KEY_PER_MINUTE": "0",
        "MYAISERV_RATE_LIMITS__PER_TENANT_PER_MINUTE": "0",
        **env_overrides,
    }
    env.setdefault("MYAISERV_INDEXING__METRICS_PORT", str(free_port()))
    procs = [spawn(["serve", "--host", "127.0.0.1", "--port", str(port)], env)]
    if indexer:
        procs.append(spawn(["indexer", "run"], env))
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            deadline = asyncio.get_running_loop().time() + start_timeout_s
            while True:
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("the API or the indexer exited while starting")
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError("the API did not become ready")
                await asyncio.sleep(0.5)
        yield url, procs[0]
    finally:
        stop(procs)


async def tenant_key(
    sessions: async_sessionmaker[AsyncSession], name: str, *, key_name: str = "eval"
) -> tuple[UUID, str]:
    """A fresh read/write key for tenant ``name``, creating the tenant if needed."""
    async with sessions() as session, session.begin():
        service = TenantService(session)
        if await TenantRepository(session).get_by_name(name) is None:
            issued = await service.create_tenant(name, scopes=["read", "write"], key_name=key_name)
        else:
            issued = await service.create_key(name, scopes=["read", "write"], key_name=key_name)
    return issued.tenant_id, issued.plaintext


async def indexers_alive(sessions: async_sessionmaker[AsyncSession], ttl_s: float) -> bool:
    """Whether an indexer drains this database now (a heartbeat within ``ttl_s``): then
    the local run starts none of its own, which would only compete for the cores."""
    from myaiserv.db.heartbeats import HeartbeatRepository

    async with sessions() as session:
        return bool(await HeartbeatRepository(session).live(ttl_s))


def private_deployment(
    settings: Settings, model: str, *, purpose: str = "eval"
) -> tuple[Settings, dict[str, str]]:
    """Settings (and the same as environment variables) for a deployment of its own that
    embeds with ``model``: the model is a whole deployment's (its indices record it), so
    another one is measured beside ``settings``' on the same servers in a database, index
    prefix and Redis namespace named after ``purpose`` and the model, never touching
    theirs (``myaiserv eval --model``, ``bench/models.py``)."""
    from sqlalchemy.engine import make_url

    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    url = make_url(settings.database_url)
    database_url = url.set(database=f"{url.database}_{purpose}_{slug.replace('-', '_')}")
    prefix = f"{purpose}-{slug}"
    private = settings.model_copy(
        update={
            "database_url": database_url.render_as_string(hide_password=False),
            "es": settings.es.model_copy(update={"index_prefix": prefix}),
            "redis": settings.redis.model_copy(update={"namespace": prefix}),
            "embedding": settings.embedding.model_copy(update={"model": model}),
        }
    )
    env = {
        "DATABASE_URL": private.database_url,
        "MYAISERV_ES__INDEX_PREFIX": prefix,
        "MYAISERV_REDIS__NAMESPACE": prefix,
        "MYAISERV_EMBEDDING__MODEL": model,
    }
    return private, env
