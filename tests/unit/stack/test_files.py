from __future__ import annotations

import json
import os
from pathlib import Path

from myaiserv.stack.config import StackConfig, WebConfig
from myaiserv.stack.manager import write_env_file
from myaiserv.stack.web import WebService


def test_env_file_keeps_other_lines(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# mine\nLOG_LEVEL=DEBUG\nREDIS_URL=redis://old:1/0\n")
    write_env_file(path, {"REDIS_URL": "redis://127.0.0.1:63790/0", "ES_URL": "http://a:1"})
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# mine", "LOG_LEVEL=DEBUG", "REDIS_URL=redis://127.0.0.1:63790/0"]
    assert lines[-1] == "ES_URL=http://a:1"
    write_env_file(path, {"ES_URL": "http://b:2"})
    assert path.read_text().count("ES_URL=") == 1


def test_state_round_trips(tmp_path: Path) -> None:
    config = StackConfig(dir=tmp_path, services=("elasticsearch", "redis"))
    config.elasticsearch.nodes = 3
    config.save()
    loaded = StackConfig.load(tmp_path)
    assert loaded is not None
    assert loaded.to_json() == config.to_json()
    assert loaded.env()["ES_URL"].split(",") == [
        "http://127.0.0.1:19200",
        "http://127.0.0.1:19201",
        "http://127.0.0.1:19202",
    ]
    assert "DATABASE_URL" not in loaded.env()


def test_a_stack_with_zipkin_turns_the_apps_tracing_on(tmp_path: Path) -> None:
    config = StackConfig(dir=tmp_path)
    config.zipkin.port = 19511
    config.save()
    loaded = StackConfig.load(tmp_path)
    assert loaded is not None
    assert loaded.zipkin.url == "http://127.0.0.1:19511"
    env = loaded.env()
    assert env["MYAISERV_TRACING__EXPORTER"] == "zipkin"
    assert env["MYAISERV_TRACING__ENDPOINT"] == "http://127.0.0.1:19511/api/v2/spans"
    assert env["MYAISERV_TRACING__UI_URL"] == "http://127.0.0.1:19511/zipkin/traces/{trace_id}"
    without = StackConfig(dir=tmp_path, services=("elasticsearch", "postgres", "redis"))
    assert not any(key.startswith("MYAISERV_TRACING__") for key in without.env())


def test_a_stack_saved_before_zipkin_loads_without_it(tmp_path: Path) -> None:
    """stack.json of a stack made before Zipkin was part of it: its services stay as they
    were (a running stack is not changed under its owner)."""
    (tmp_path / "stack.json").write_text(
        json.dumps({"services": ["elasticsearch", "postgres", "redis"], "redis": {"port": 1}})
    )
    loaded = StackConfig.load(tmp_path)
    assert loaded is not None
    assert loaded.services == ("elasticsearch", "postgres", "redis")
    assert loaded.zipkin.port == 19411
    assert "MYAISERV_TRACING__EXPORTER" not in loaded.env()


def test_the_web_tier_names_its_running_processes(tmp_path: Path) -> None:
    config = StackConfig(dir=tmp_path, web=WebConfig(instances=2, indexers=1))
    web = WebService(tmp_path, config)
    web.root.mkdir(parents=True)
    (web.root / "web-1.pid").write_text(f"{os.getpid()}\n")
    (web.root / "indexer-1.pid").write_text(f"{os.getppid()}\n")
    (web.root / "nginx.pid").write_text("999999999\n")  # no such process: left out
    # web-2 has no pid file (not started): left out too.
    assert web.pids() == {"web-1": os.getpid(), "indexer-1": os.getppid()}
