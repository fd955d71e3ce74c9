"""`stack up --secure`: what the stack remembers, writes into .env and configures."""

from __future__ import annotations

from pathlib import Path

from myaiserv.stack import es_security
from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import write_env_file
from myaiserv.stack.redis import resp_command


def test_secure_makes_passwords_once_and_writes_them_into_the_env(tmp_path: Path) -> None:
    config = StackConfig(dir=tmp_path / "stack")
    assert "MYAISERV_ES__PASSWORD" not in config.env()  # the default stays unsecured
    config.secure(True)
    es_password, redis_password = config.elasticsearch.password, config.redis.password
    assert len(es_password) >= 20 and len(redis_password) >= 20 and es_password != redis_password
    config.secure(True)  # idempotent: a second `stack up --secure` keeps them
    assert (config.elasticsearch.password, config.redis.password) == (es_password, redis_password)

    env = config.env()
    assert env["ES_URL"] == "https://127.0.0.1:19200"
    assert env["MYAISERV_ES__USERNAME"] == "myaiserv"
    assert env["MYAISERV_ES__PASSWORD"] == es_password
    assert env["MYAISERV_ES__CA_CERTS"] == str(
        (tmp_path / "stack" / "elasticsearch" / "certs" / "ca.crt").resolve()
    )
    assert env["MYAISERV_REDIS__PASSWORD"] == redis_password
    assert env["REDIS_URL"] == "redis://127.0.0.1:63790/0"  # no password in the URL

    config.save()
    write_env_file(tmp_path / ".env", env)
    for private in (config.state_path, tmp_path / ".env"):
        assert private.stat().st_mode & 0o077 == 0  # passwords: the owner's only
    loaded = StackConfig.load(config.dir)
    assert loaded is not None and loaded.env() == env

    config.secure(False)
    assert config.env()["ES_URL"].startswith("http://")
    assert not config.elasticsearch.password and not config.redis.password


def test_secured_nodes_use_tls_everywhere_and_a_role_on_their_prefix() -> None:
    settings = es_security.node_settings()
    assert settings["xpack.security.enabled"] is True
    for layer in ("http", "transport"):
        assert settings[f"xpack.security.{layer}.ssl.enabled"] is True
        assert settings[f"xpack.security.{layer}.ssl.certificate_authorities"] == ["certs/ca.crt"]
    assert "all" not in es_security.INDEX_PRIVILEGES
    assert "manage" not in es_security.CLUSTER_PRIVILEGES  # no cluster-wide admin


def test_redis_commands_are_sent_as_bulk_strings() -> None:
    assert resp_command("AUTH", "p a\r\nss") == b"*2\r\n$4\r\nAUTH\r\n$7\r\np a\r\nss\r\n"
