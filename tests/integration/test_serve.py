"""The real server process: starts against the stack, refuses bad settings clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from myaiserv.config import Settings
from myaiserv.evaluation.harness import free_port

pytestmark = pytest.mark.integration


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYAISERV_")}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        ES_URL=",".join(settings.es_url),
        HOST="127.0.0.1",
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def test_server_starts_and_is_ready(settings: Settings, tmp_path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "myaiserv", "serve", "--port", str(port)],
        env=_env(settings),
        cwd=tmp_path,  # no .env from the checkout: the environment alone configures it
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert ready is not None, "server never answered"
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"elasticsearch", "postgres", "redis"}
        schema = httpx.get(f"http://127.0.0.1:{port}/schema/openapi.json", timeout=5)
        assert schema.status_code == 200
        assert "/ready" in schema.json()["paths"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out
    # Not a TTY here: every log line is one JSON object.
    log_lines = [line for line in out.splitlines() if line.strip()]
    assert log_lines and all(line.startswith("{") for line in log_lines), out[-2000:]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/app"),
        ("REDIS_URL", "localhost:6379"),
        ("ES_URL", "http://127.0.0.1:19200,not-a-url"),
    ],
)
def test_malformed_url_stops_start_up_with_a_clear_message(
    settings: Settings, tmp_path, var: str, value: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "myaiserv", "serve", "--port", str(free_port())],
        check=False,
        env=_env(settings, **{var: value}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert var in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_one_scrape_covers_every_worker(settings: Settings, tmp_path) -> None:
    """With several workers, /metrics (answered by any one of them) counts the requests
    every worker served (Prometheus multiprocess mode)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "myaiserv", "serve", "--port", str(port), "--workers", "2"],
        env=_env(settings, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics")),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(40):  # new connections: the kernel spreads them over workers
                assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
            for _ in range(5):
                text = client.get("/metrics", headers={"Connection": "close"}).text
                served = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("myaiserv_http_requests_total{")
                    and 'route="/health"' in line
                )
                assert served == 41  # the 40, and the first probe that answered
    finally:
        proc.terminate()
        proc.wait(timeout=30)
