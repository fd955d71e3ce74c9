"""The production topology (docker-compose.yml with --scale web=3, on this machine's
engine: podman with the local stand-in images here) measured from outside, through nginx.

- ``boot_s``: ``compose down --volumes`` (every datastore empty), then ``compose up -d
  --scale web=3`` with the images already built, until ``/ready`` answers 200 through
  nginx: certificates made, the cluster formed, migrations and indices created, every
  health check passed on the way. ``boot_restart_s``: the same after a plain ``down``
  (volumes kept). Median and range over BOOT_ROUNDS (2).
- ``image_mb``: the app image's size as the engine reports it.
- ``scale_3_to_5_failed_requests``: searches through nginx in a loop (one client, about
  10 a second, under the key's rate limit) while ``compose up -d --scale web=5`` adds two
  instances, until both answer; summed over ROUNDS (3) rounds, each scaled back to 3
  afterwards (``scale_5_to_3_...``).
- ``es_node_loss_failed_searches``: the same searches, past the result cache (each one
  answered by Elasticsearch), while one Elasticsearch node is stopped for 20 s, each node
  once (es01 first: the first master).
- ``redis_failover_s``: the Redis primary stopped (a killed one is restarted at once by
  its restart policy, before Sentinel would act); seconds from the stop until ``/ready``
  (which pings Redis) answers 200 through nginx six times in a row: Sentinel's promotion
  plus the app finding the new primary (``redis_failover_switch_s``: until the Sentinels name it).
  Median and max over ROUNDS; the stopped node is restarted (as a replica) after each.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid

import httpx

from bench import report
from tooling.topology import images
from tooling.topology.live import Load, Topology, eventually
from tooling.topology.settings import wait_ready

ROUNDS = int(os.environ.get("TOPOLOGY_ROUNDS", "3"))
BOOT_ROUNDS = int(os.environ.get("TOPOLOGY_BOOT_ROUNDS", "2"))


def boot(topo: Topology, *, volumes: bool) -> float:
    topo.compose("down", *(["--volumes"] if volumes else []), timeout=600)
    started = time.monotonic()
    topo.compose("up", "-d", "--no-build", "--scale", "web=3", timeout=900)
    wait_ready(timeout_s=900)
    return time.monotonic() - started


def tenant_key(topo: Topology) -> str:
    return topo.create_tenant(f"bench-topology-{uuid.uuid4().hex[:6]}")


def searches(headers: dict[str, str], *, cached: bool = True) -> Load:
    """About 10 searches a second from one key: under its rate limit (1200 a minute by
    default), so every answer but a 200 is a failure of the topology. ``cached=False``:
    past the result cache, so that every search reaches Elasticsearch."""
    body = {"query": "tides and the moon", "kinds": ["documents"]}
    if not cached:
        headers = {**headers, "Cache-Control": "no-cache"}
    return Load(lambda c: c.post("/v1/search", json=body, headers=headers), pause_s=0.1)


def scale_round(topo: Topology, headers: dict[str, str]) -> tuple[int, int, int, int]:
    """(failed, served) while scaling 3 -> 5, then the same for 5 -> 3."""
    with searches(headers) as up:
        time.sleep(2)
        topo.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "web=5")
        for container in topo.containers("web"):
            topo.wait_healthy(container)
        eventually(lambda: len(up.instances) >= 5, within=120)
    with searches(headers) as down:
        time.sleep(2)
        topo.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "web=3")
        time.sleep(10)  # nginx's resolver re-reads the instances every 5 s
    shown("scaling 3 -> 5", up.failures)
    shown("scaling 5 -> 3", down.failures)
    return len(up.failures), up.ok, len(down.failures), down.ok


def shown(what: str, failures: list[str]) -> None:
    """Each failed request with its moment and answer, in the run's output: a figure
    above zero says what failed."""
    for failure in failures:
        print(f"{what}: {failure}", file=sys.stderr)


def node_loss_round(topo: Topology, headers: dict[str, str], node: str) -> tuple[int, int]:
    (container,) = topo.containers(node)
    with searches(headers, cached=False) as load:
        time.sleep(2)
        topo.stop(container)
        time.sleep(20)
    shown(f"{node} stopped", load.failures)
    topo.start(container)
    topo.wait_healthy(container)
    return len(load.failures), load.ok


def failover_round(topo: Topology) -> tuple[float, float]:
    primary = topo.redis_primary()
    (container,) = topo.containers(primary)
    # Stopped, not killed: the restart policy would bring a killed one back at once.
    topo.stop(container)
    killed = time.monotonic()
    eventually(lambda: topo.redis_primary() != primary, within=120, every=0.2)
    switched = time.monotonic() - killed
    in_a_row = 0
    with httpx.Client(base_url=topo.url, timeout=10) as client:
        while in_a_row < 6:
            ok = client.get("/ready").status_code == 200
            in_a_row = in_a_row + 1 if ok else 0
            if time.monotonic() - killed > 300:
                raise AssertionError("the app did not find the new Redis primary in 300 s")
            time.sleep(0.1)
    ready = time.monotonic() - killed
    topo.start(container)
    topo.wait_healthy(container)
    return switched, ready


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def main() -> None:
    topo = Topology()
    image_mb = images.image_size_mb(topo.engine, images.APP_IMAGE)
    boots = [boot(topo, volumes=True) for _ in range(BOOT_ROUNDS)]
    restarts = [boot(topo, volumes=False) for _ in range(BOOT_ROUNDS)]
    headers = {"X-API-Key": tenant_key(topo)}
    with httpx.Client(base_url=topo.url, headers=headers, timeout=60) as client:
        for i in range(20):
            resp = client.post(
                "/v1/documents",
                json={"title": f"Tides {i}", "text": f"Spring tide {i} follows the moon."},
            )
            assert resp.status_code == 201, resp.text
    scaling = [scale_round(topo, headers) for _ in range(ROUNDS)]
    node_loss = [node_loss_round(topo, headers, node) for node in ("es01", "es02", "es03")]
    failovers = [failover_round(topo) for _ in range(ROUNDS)]
    figures = {
        "engine": topo.engine.kind,
        "image_mb": round(image_mb),
        "boot_s": spread(boots)["median"],
        "boot_s_range": spread(boots),
        "boot_restart_s": spread(restarts)["median"],
        "boot_restart_s_range": spread(restarts),
        "scale_3_to_5_failed_requests": sum(r[0] for r in scaling),
        "scale_3_to_5_requests": sum(r[1] + r[0] for r in scaling),
        "scale_5_to_3_failed_requests": sum(r[2] for r in scaling),
        "scale_5_to_3_requests": sum(r[3] + r[2] for r in scaling),
        "es_node_loss_failed_searches": sum(r[0] for r in node_loss),
        "es_node_loss_searches": sum(r[0] + r[1] for r in node_loss),
        "redis_failover_s": round(statistics.median(f[1] for f in failovers), 1),
        "redis_failover_max_s": round(max(f[1] for f in failovers), 1),
        "redis_failover_switch_s": round(statistics.median(f[0] for f in failovers), 1),
        "rounds": ROUNDS,
        "boot_rounds": BOOT_ROUNDS,
    }
    report.save("topology", figures, {"how": (__doc__ or "").strip()})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
