"""REDIS_URL in its Sentinel form: what it names, and clear errors naming REDIS_URL."""

from __future__ import annotations

import pytest

from myaiserv.cache.url import SentinelTarget, parse_sentinel_url
from myaiserv.config import SettingsError, load_settings
from myaiserv.stack.config import RedisConfig


def test_sentinels_master_and_database() -> None:
    target = parse_sentinel_url("redis+sentinel://s1:26390,s2,[::1]:26392/mymaster/4")
    assert target == SentinelTarget(
        sentinels=(("s1", 26390), ("s2", 26379), ("::1", 26392)), master_name="mymaster", db=4
    )


def test_database_defaults_to_0_and_credentials_are_decoded() -> None:
    target = parse_sentinel_url("redis+sentinel://app:p%40ss@s1:1/mymaster")
    assert (target.db, target.username, target.password) == (0, "app", "p@ss")
    assert parse_sentinel_url("redis+sentinel://:secret@s1:1/m/").username is None


def test_the_local_stack_writes_a_url_the_settings_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    url = RedisConfig(port=63810, replicas=2, sentinel_port=26390).url(3)
    assert url == "redis+sentinel://127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392/myaiserv/3"
    assert RedisConfig().url() == "redis://127.0.0.1:63790/0"  # no replicas: one Redis
    monkeypatch.setenv("REDIS_URL", url)
    assert load_settings(_env_file=None).redis_url == url
    assert parse_sentinel_url(url).sentinels[2] == ("127.0.0.1", 26392)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("redis+sentinel://s1:26379", "names no master"),
        ("redis+sentinel://s1:26379/", "names no master"),
        ("redis+sentinel:///mymaster/0", "names no Sentinel"),
        ("redis+sentinel://s1,,s2/mymaster", "empty one"),
        ("redis+sentinel://s1:port/mymaster", "port that is not a number"),
        ("redis+sentinel://s1:99999/mymaster", "port that is not a number"),
        ("redis+sentinel://:26379/mymaster", "names no host"),
        ("redis+sentinel://s1/mymaster/zero", "'zero' is not a number"),
        ("redis+sentinel://s1/mymaster/0/extra", "too many path segments"),
        ("redis+sentinel://s1/mymaster/0?ssl=true", "no query"),
        ("sentinel://s1/mymaster", "unsupported scheme"),
    ],
)
def test_bad_sentinel_urls_are_a_settings_error_naming_redis_url(
    monkeypatch: pytest.MonkeyPatch, value: str, needle: str
) -> None:
    monkeypatch.setenv("REDIS_URL", value)
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert "REDIS_URL" in message
    assert needle in message


def test_errors_never_repeat_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://app:hunter2secret@s1:port/mymaster")
    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None)
    assert "port that is not a number" in str(info.value)
    assert "hunter2secret" not in str(info.value)
