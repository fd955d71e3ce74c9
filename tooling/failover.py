"""A Redis primary with replicas and three Sentinels in a folder of their own, on free
ports, and its primary SIGKILLed: what the failover test and benchmark share.

The group is the local stack's own ``RedisService`` (the same configs, the same quick
Sentinel timings), started beside whatever stack runs, so killing its primary disturbs
nobody else's Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from myaiserv.stack.config import RedisConfig
from myaiserv.stack.process import ensure_traversable, read_pid, service_user
from myaiserv.stack.redis import RedisService
from tooling.ports import free_port_range


def _ports(replicas: int) -> tuple[int, int]:
    """First node port and first Sentinel port, the two ranges apart."""
    nodes = free_port_range(replicas + 1)
    while True:
        sentinels = free_port_range(3)
        if sentinels > nodes + replicas or sentinels + 2 < nodes:
            return nodes, sentinels


@contextmanager
def sentinel_group(root: Path, replicas: int = 2) -> Iterator[RedisService]:
    """Started and ready to fail over on entry (every Sentinel knows the replicas and
    its peers); stopped on exit."""
    run_as = service_user()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    ensure_traversable(root, run_as)
    run_as.own(root)
    port, sentinel_port = _ports(replicas)
    group = RedisService(
        root, RedisConfig(port=port, replicas=replicas, sentinel_port=sentinel_port), run_as
    )
    try:
        group.start()
        yield group
    finally:
        group.stop()


def kill_primary(group: RedisService) -> int:
    """SIGKILL the node the Sentinels name as the primary; returns its port."""
    port = group.master_port()
    pid = read_pid(group.pidfile_of(port)) if port else None
    if port is None or pid is None:
        raise RuntimeError("no primary to kill: the Sentinels name none")
    os.kill(pid, signal.SIGKILL)
    return port


async def wait_for_promotion(group: RedisService, old: int, *, timeout_s: float = 60) -> float:
    """Seconds (monotonic, from now) until the Sentinels name a primary other than
    ``old`` and that node answers as one."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        port = await asyncio.to_thread(group.master_port)
        if port not in (None, old) and await asyncio.to_thread(group.role, port) == "master":
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no replica promoted within {timeout_s:g} s")


async def first_counted(http: httpx.AsyncClient, since: float, *, timeout_s: float = 60) -> float:
    """Seconds from ``since`` (monotonic) until the API counts a request in Redis again:
    the first answer carrying RateLimit headers, i.e. its rate-limit counters written on
    the new primary (with Redis unreachable the limiter fails open, without them)."""
    while time.monotonic() - since < timeout_s:
        try:
            resp = await http.get("/v1/documents", params={"limit": 1})
            if resp.status_code == 200 and "ratelimit-remaining" in resp.headers:
                return time.monotonic() - since
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no request counted in Redis within {timeout_s:g} s")
