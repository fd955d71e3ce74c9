from __future__ import annotations

import pytest

from myaiserv.config import SettingsError, load_settings

SEED_VARS = ("DATABASE_URL", "REDIS_URL", "ES_URL", "LOG_LEVEL", "DEBUG", "PORT", "HOST")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in SEED_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"MYAISERV_{name}", raising=False)
    # No .env from the developer's checkout leaks into these tests.
    monkeypatch.chdir(tmp_path)


def test_seed_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.internal:5432/app")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("ES_URL", "http://es01:9200, http://es02:9200,http://es03:9200/")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("DEBUG", "true")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("HOST", "127.0.0.1")

    s = load_settings()

    assert s.database_url == "postgresql+asyncpg://u:p@db.internal:5432/app"
    assert s.redis_url == "redis://cache:6379/2"
    assert s.es_url == ["http://es01:9200", "http://es02:9200", "http://es03:9200"]
    assert s.log_level == "DEBUG"
    assert s.debug is True
    assert s.port == 9000
    assert s.host == "127.0.0.1"


def test_defaults_match_containers() -> None:
    s = load_settings()
    assert s.port == 8000
    assert s.host == "0.0.0.0"


def test_prefixed_and_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAISERV_PORT", "8123")
    monkeypatch.setenv("MYAISERV_ES__REQUEST_TIMEOUT_S", "3.5")
    monkeypatch.setenv("MYAISERV_DB__POOL_SIZE", "4")
    s = load_settings()
    assert s.port == 8123
    assert s.es.request_timeout_s == 3.5
    assert s.db.pool_size == 4


def test_dotenv_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-dotenv:6379/0\n")
    assert load_settings().redis_url == "redis://from-dotenv:6379/0"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("DATABASE_URL", "mysql://u:p@h/db", "unsupported scheme"),
        ("DATABASE_URL", "postgresql://u:p@h:5432/", "no database"),
        ("REDIS_URL", "http://cache:6379", "REDIS_URL"),
        ("REDIS_URL", "redis://cache:port/0", "port"),
        ("ES_URL", "es01:9200", "ES_URL"),
        ("ES_URL", "http://es01:92x0", "port"),
        ("PORT", "eighty", "PORT"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_malformed_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert var in message
    assert needle in message
