"""A real server started with credentials in every URL it is given (DATABASE_URL,
REDIS_URL, ES_URL, a provider's base URL) never prints them: not in its start-up line,
not in its dependencies' errors, not at DEBUG, where the client libraries log requests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from myaiserv.config import Settings
from myaiserv.logging import REDACTED
from tests.support import served

pytestmark = pytest.mark.integration


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def test_start_up_logs_never_print_url_credentials(settings: Settings, tmp_path: Path) -> None:
    secrets = {name: f"{name}-{uuid.uuid4().hex[:12]}" for name in ("pg", "redis", "es", "llm")}
    es_url = with_credentials(settings.es_url[0], "elastic", secrets["es"])
    providers = [
        {"name": "local", "kind": "extractive", "models": ["extractive"]},
        {
            "name": "upstream",
            "base_url": f"http://key:{secrets['llm']}@127.0.0.1:9/v1",
            "models": ["m"],
        },
    ]
    env = {
        # Wrong passwords for PostgreSQL and Redis: their errors are logged too.
        "DATABASE_URL": with_credentials(settings.database_url, "myaiserv", secrets["pg"]),
        "REDIS_URL": with_credentials(settings.redis_url, "default", secrets["redis"]),
        "ES_URL": es_url,
        "MYAISERV_LLM__PROVIDERS": json.dumps(providers),
        "LOG_LEVEL": "DEBUG",
    }
    with served(settings, tmp_path, **env) as (url, output):
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503  # PostgreSQL refused the password: it was used
        httpx.get(f"{url}/v1/documents", headers={"X-API-Key": "mas_x_y"}, timeout=30)
    logged = output.read_text()
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    started = [line for line in lines if line.get("event") == "started"]
    assert started, logged[-3000:]
    # The start-up line names Elasticsearch, without its password.
    host = urlsplit(es_url).hostname
    assert started[0]["es"] == [f"http://elastic:{REDACTED}@{host}:{urlsplit(es_url).port}"]
    for name, secret in secrets.items():
        assert secret not in logged, f"the {name} password is in the log"
