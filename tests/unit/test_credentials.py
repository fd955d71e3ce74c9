"""Datastore credentials: secret settings that reach the clients and nothing else."""

from __future__ import annotations

import base64
from pathlib import Path

import certifi
import pytest

from myaiserv.cache.client import create_redis_client
from myaiserv.config import SettingsError, load_settings
from myaiserv.search.client import create_es_client, security_options


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ES_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    path = tmp_path / "ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def test_passwords_are_read_from_the_environment_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, ca: Path
) -> None:
    monkeypatch.setenv("ES_URL", "https://es.internal:9200")
    monkeypatch.setenv("MYAISERV_ES__USERNAME", "myaiserv")
    monkeypatch.setenv("MYAISERV_ES__PASSWORD", "es-s3cret")
    monkeypatch.setenv("MYAISERV_ES__CA_CERTS", str(ca))
    monkeypatch.setenv("MYAISERV_REDIS__USERNAME", "app")
    monkeypatch.setenv("MYAISERV_REDIS__PASSWORD", "redis-s3cret")
    settings = load_settings()
    assert settings.es.password is not None and settings.redis.password is not None
    assert settings.es.password.get_secret_value() == "es-s3cret"
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "es-s3cret" not in shown and "redis-s3cret" not in shown


def test_blank_credentials_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ES__USERNAME", "ES__PASSWORD", "ES__API_KEY", "REDIS__PASSWORD"):
        monkeypatch.setenv(f"MYAISERV_{name}", "")
    settings = load_settings()
    assert settings.es.username is settings.es.password is settings.es.api_key is None
    assert settings.redis.password is None


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"es": {"username": "u"}}, "MYAISERV_ES: USERNAME and PASSWORD go together"),
        ({"es": {"password": "p"}}, "MYAISERV_ES: USERNAME and PASSWORD go together"),
        (
            {"es": {"username": "u", "password": "p", "api_key": "k"}},
            "set API_KEY or USERNAME/PASSWORD",
        ),
        ({"es": {"ca_certs": "/no/such/ca.crt"}}, "CA_CERTS: no file"),
        (
            {"redis_url": "redis://:url-pass@h:6379/0", "redis": {"password": "setting-pass"}},
            "MYAISERV_REDIS: REDIS_URL holds credentials",
        ),
        (
            {"redis_url": "redis://app:url-pass@h:6379/0", "redis": {"username": "other"}},
            "give them in one place",
        ),
    ],
)
def test_contradictory_credentials_stop_start_up(overrides: dict[str, object], needle: str):
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert needle in str(info.value)
    assert "url-pass" not in str(info.value) and "setting-pass" not in str(info.value)


def test_the_es_client_authenticates_and_trusts_the_ca() -> None:
    ca = certifi.where()  # any readable PEM bundle
    settings = load_settings(
        es_url="https://127.0.0.1:1",
        es={"username": "myaiserv", "password": "pw", "ca_certs": ca},
    )
    assert security_options(settings.es, settings.es_url) == {
        "basic_auth": ("myaiserv", "pw"),
        "verify_certs": True,
        "ca_certs": ca,
    }
    client = create_es_client(settings)
    expected = base64.b64encode(b"myaiserv:pw").decode()
    assert client._headers["authorization"] == f"Basic {expected}"
    node = client.transport.node_pool.get()
    assert node.config.scheme == "https" and node.config.ca_certs == ca


def test_an_api_key_and_plain_http() -> None:
    settings = load_settings(es_url="http://127.0.0.1:1", es={"api_key": "a2V5"})
    # No TLS options on http (the client refuses them there).
    assert security_options(settings.es, settings.es_url) == {"api_key": "a2V5"}
    assert load_settings(es={"verify_certs": False}).es.verify_certs is False


def test_the_redis_client_gets_the_password_from_settings_or_url() -> None:
    settings = load_settings(
        redis_url="redis://127.0.0.1:1/0", redis={"username": "app", "password": "pw"}
    )
    kwargs = create_redis_client(settings).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("app", "pw")
    in_url = load_settings(redis_url="redis://app:url-pw@127.0.0.1:1/0")
    kwargs = create_redis_client(in_url).connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("app", "url-pw")
    bare = create_redis_client(load_settings(redis_url="redis://127.0.0.1:1/0"))
    assert bare.connection_pool.connection_kwargs.get("password") is None
