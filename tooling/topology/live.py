"""The running topology seen from outside, for its live test and its benchmark: its
containers (through the engine's CLI), MyAIServ through nginx, Prometheus and
Alertmanager on the host's loopback, and steady request load that counts failures."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tooling.topology import engine as engines
from tooling.topology.settings import base_url, compose_env, compose_files, read_env


class Topology:
    def __init__(self) -> None:
        self.engine = engines.detect()
        if self.engine.kind == "podman":
            engines.start_podman_service(self.engine)
        self.local_images = self.engine.kind == "podman" or (
            os.environ.get("MYAISERV_LOCAL_IMAGES") == "1"
        )
        self.env = read_env(compose_env())
        self.url = base_url()

    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        command = [
            *self.engine.compose_command(),
            "--project-directory",
            str(engines.ROOT),
            "--env-file",
            str(compose_env()),
        ]
        for path in compose_files(self.local_images):
            command += ["-f", str(path)]
        proc = subprocess.run(
            [*command, *args],
            env={**os.environ, **self.engine.env},
            cwd=engines.ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed: {proc.stderr[-3000:]}")
        return proc.stdout

    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers, running or not."""
        return self.compose("ps", "-q", service).split()

    def inspect(self, container: str) -> dict[str, Any]:
        out = self.engine.run("inspect", container, capture=True).stdout
        found = json.loads(out)
        assert isinstance(found, list) and found
        return dict(found[0])

    def state(self, container: str) -> tuple[str, str | None]:
        """(status, health status or None when the container has no check)."""
        state = self.inspect(container)["State"]
        health = state.get("Health") or state.get("Healthcheck") or {}
        return str(state["Status"]), health.get("Status") or None

    def exec(self, container: str, *command: str) -> str:
        return self.engine.run("exec", container, *command, capture=True, timeout=60).stdout

    def create_tenant(self, name: str) -> str:
        """A tenant made with the CLI inside a web container, as an operator would; its
        first API key."""
        out = self.exec(self.containers("web")[0], "myaiserv", "tenants", "create", name)
        for line in out.splitlines():
            if line.startswith("api key:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"`myaiserv tenants create` printed no key: {out}")

    def logs(self, container: str, since: str) -> str:
        """A container's output (both streams) since a time (``2026-12-06T18:58:10Z``) or
        for a duration back (``90s``)."""
        out = self.engine.run("logs", "--since", since, container, capture=True, timeout=60)
        return out.stdout + out.stderr

    def stop(self, container: str) -> None:
        self.engine.run("stop", "-t", "30", container, capture=True, timeout=120)

    def start(self, container: str) -> None:
        self.engine.run("start", container, capture=True, timeout=120)

    def wait_healthy(self, container: str, within: float = 300) -> None:
        eventually(lambda: self.state(container) == ("running", "healthy"), within=within)

    # --- Prometheus and Alertmanager (published on the host's loopback) ----------------

    def prometheus(self, query: str) -> list[dict[str, Any]]:
        port = self.env.get("PROMETHEUS_PORT", "9090")
        resp = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=10
        )
        resp.raise_for_status()
        return list(resp.json()["data"]["result"])

    def scraped(self, job: str) -> list[str]:
        """The addresses Prometheus scrapes for ``job`` now and found up at its last
        scrape (its targets, not the ``up`` series: those of targets gone stay visible
        for the query look-back when Prometheus restarted before marking them stale)."""
        port = self.env.get("PROMETHEUS_PORT", "9090")
        resp = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/targets", params={"state": "active"}, timeout=10
        )
        resp.raise_for_status()
        return sorted(
            t["labels"]["instance"]
            for t in resp.json()["data"]["activeTargets"]
            if t["labels"].get("job") == job and t["health"] == "up"
        )

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus holds, pending or firing (labels, state, activeAt, value)."""
        port = self.env.get("PROMETHEUS_PORT", "9090")
        resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=10)
        resp.raise_for_status()
        return list(resp.json()["data"]["alerts"])

    def firing(self) -> set[str]:
        """Names of the alerts Prometheus has firing."""
        return {a["labels"]["alertname"] for a in self.alerts() if a["state"] == "firing"}

    def alertmanager_alerts(self) -> set[str]:
        port = self.env.get("ALERTMANAGER_PORT", "9093")
        resp = httpx.get(f"http://127.0.0.1:{port}/api/v2/alerts", timeout=10)
        resp.raise_for_status()
        return {a["labels"]["alertname"] for a in resp.json()}

    # --- Redis, through a Sentinel ------------------------------------------------------

    def redis_primary(self) -> str:
        """The host name the Sentinels give for the primary (a node's service name)."""
        sentinel = self.containers("redis-sentinel-1")[0]
        out = self.exec(
            sentinel, "redis-cli", "-p", "26379", "sentinel", "get-master-addr-by-name", "myaiserv"
        )
        return out.split()[0]


def eventually(check: Callable[[], bool], within: float, every: float = 1.0) -> None:
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (AssertionError, httpx.HTTPError, subprocess.SubprocessError, KeyError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"not true within {within:.0f}s (last error: {last!r})")


@dataclass
class Load:
    """Requests in a loop on a thread, each answer counted: a failure is anything but the
    expected status (a refused connection, a 502/503 from nginx, a timeout). Failures and
    slow answers say when they were sent, how long they took and which instance answered,
    so that a failed test shows its timeline."""

    request: Callable[[httpx.Client], httpx.Response]
    expect: int = 200
    pause_s: float = 0.05
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)  # answered as expected, in over 1 s
    instances: Counter[str] = field(default_factory=Counter)
    started: float = field(default=0.0, init=False)  # set as the load begins
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(base_url=base_url(), timeout=30) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    resp = self.request(client)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{self._when(sent)}: {exc!r}")
                else:
                    instance = resp.headers.get("x-instance", "?")
                    if resp.status_code == self.expect:
                        self.ok += 1
                        self.instances[instance] += 1
                        if time.monotonic() - sent > 1:
                            self.slow.append(f"{self._when(sent)} from {instance}")
                    else:
                        self.failures.append(
                            f"{self._when(sent)} from {instance}: "
                            f"{resp.status_code} {resp.text[:200]}"
                        )
                time.sleep(self.pause_s)

    def _when(self, sent: float) -> str:
        """When a request was sent (seconds after the load began) and how long it took."""
        return f"sent at +{sent - self.started:.1f}s, took {time.monotonic() - sent:.1f}s"
