"""The local stack's Redis with replicas and Sentinels: the files it writes and the
replies it reads (the servers themselves: tests/integration/test_redis_failover.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from myaiserv.stack.config import RedisConfig, StackConfig
from myaiserv.stack.process import service_user
from myaiserv.stack.redis import RedisService, parse_reply


def test_replies_are_read_whole_or_not_at_all() -> None:
    reply = b"*2\r\n$9\r\n127.0.0.1\r\n$5\r\n63812\r\n"
    assert parse_reply(reply) == (["127.0.0.1", "63812"], len(reply))
    role = b"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:63810\r\n$9\r\nconnected\r\n:42\r\n"
    assert parse_reply(role)[0] == ["slave", "127.0.0.1", 63810, "connected", 42]
    assert parse_reply(b"+PONG\r\n")[0] == "PONG"
    assert parse_reply(b"*-1\r\n")[0] is None
    for partial in (reply[:-3], reply[:7], b"$5\r\nabc"):
        with pytest.raises(IndexError):
            parse_reply(partial)


def test_replicas_follow_the_primary_and_sentinels_fail_over_quickly(tmp_path: Path) -> None:
    config = RedisConfig(port=7000, replicas=2, sentinel_port=27000)
    redis = RedisService(tmp_path, config, service_user())
    assert config.node_ports() == [7000, 7001, 7002]
    assert config.sentinel_ports() == [27000, 27001, 27002]
    # The first node keeps the single server's files: a stack without replicas is as before.
    assert redis.pidfile == tmp_path / "redis" / "redis.pid"
    assert redis.pidfile_of(7002) == tmp_path / "redis" / "node-7002" / "redis.pid"
    assert redis.pidfile_of(27001) == tmp_path / "redis" / "sentinel-27001" / "redis.pid"

    primary = redis.write_node_config(7000, primary=7000).read_text()
    replica = redis.write_node_config(7001, primary=7000).read_text()
    assert "replicaof" not in primary
    assert "replicaof 127.0.0.1 7000" in replica.splitlines()
    assert "port 7001" in replica.splitlines()

    sentinel = redis.write_sentinel_config(27000, primary=7001).read_text().splitlines()
    assert "sentinel monitor myaiserv 127.0.0.1 7001 2" in sentinel  # quorum: 2 of 3
    assert "sentinel down-after-milliseconds myaiserv 1000" in sentinel
    assert "sentinel failover-timeout myaiserv 2000" in sentinel


def test_replicas_are_remembered_and_the_env_names_the_sentinels(tmp_path: Path) -> None:
    config = StackConfig(dir=tmp_path, redis=RedisConfig(replicas=2, sentinel_port=26390))
    config.save()
    loaded = StackConfig.load(tmp_path)
    assert loaded is not None
    assert loaded.redis == config.redis
    assert loaded.env()["REDIS_URL"] == (
        "redis+sentinel://127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392/myaiserv/0"
    )
    # A stack.json written before replicas existed reads as one Redis.
    (tmp_path / "stack.json").write_text('{"redis": {"port": 63790}}')
    old = StackConfig.load(tmp_path)
    assert old is not None
    assert old.redis.replicas == 0
    assert old.env()["REDIS_URL"] == "redis://127.0.0.1:63790/0"
    assert old.redis.sentinel_ports() == []
