from __future__ import annotations

from pathlib import Path

from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import write_env_file


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
