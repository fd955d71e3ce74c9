"""The settings the local topology runs with: compose's env file (secrets generated once
and kept, since PostgreSQL and Elasticsearch keep the passwords they were first given),
the compose files, and the wait for MyAIServ to answer through nginx."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import httpx

from tooling.topology.engine import CACHE, ROOT

ENV_FILE = CACHE / "topology" / "compose.env"
# Generated once per machine, then kept: the volumes were initialised with them.
SECRETS = (
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "MYAISERV_SEARCH__CURSOR_SECRET",
    "MYAISERV_CONSOLE__SECRET",
    "ELASTIC_PASSWORD",
    "MYAISERV_ES__PASSWORD",
    "REDIS_PASSWORD",
)


def http_port() -> int:
    return int(os.environ.get("MYAISERV_TOPOLOGY_HTTP_PORT", "8080"))


def defaults() -> dict[str, str]:
    """What this machine runs differently from the compose file's defaults: nginx on
    loopback only, one server worker per instance and smaller Elasticsearch heaps (two
    cores and every service on one host)."""
    return {
        "COMPOSE_PROJECT_NAME": "myaiserv",
        "MYAISERV_IMAGE": os.environ.get("MYAISERV_IMAGE", "myaiserv:latest"),
        "HTTP_BIND": "127.0.0.1",
        "HTTP_PORT": str(http_port()),
        "WEB_WORKERS": "1",
        "ES_HEAP": "512m",
        "ES_MEM_LIMIT": "1610612736",
        "REDIS_MAXMEMORY": "256mb",
    }


def read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                values[key.strip()] = value
    return values


def compose_env() -> Path:
    """The env file compose reads (--env-file): machine defaults, refreshed each run,
    and secrets made once (hex: safe in URLs) and never changed."""
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    kept = read_env(ENV_FILE)
    values = {**defaults()}
    for key in SECRETS:
        values[key] = kept.get(key) or secrets.token_hex(24)
    text = "# Written by tooling/topology: the local topology's settings and secrets.\n"
    text += "".join(f"{key}={value}\n" for key, value in values.items())
    if not ENV_FILE.exists() or ENV_FILE.read_text() != text:
        ENV_FILE.touch(mode=0o600)
        ENV_FILE.write_text(text)
    return ENV_FILE


def compose_files(local_images: bool) -> list[Path]:
    files = [ROOT / "docker-compose.yml"]
    if local_images:
        files.append(ROOT / "docker" / "local" / "compose.local.yml")
    return files


def base_url() -> str:
    return f"http://127.0.0.1:{http_port()}"


def wait_ready(timeout_s: float) -> None:
    """Until /ready answers 200 through nginx (every dependency reachable)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url()}/ready", timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(2)
    raise SystemExit(
        f"topology: /ready did not answer 200 through nginx in {timeout_s:.0f}s: {last}"
    )
