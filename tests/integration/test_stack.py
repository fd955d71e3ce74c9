"""The local stack: idempotent, and able to form a real multi-node Elasticsearch cluster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import Stack
from myaiserv.stack.process import port_open, read_pid

pytestmark = pytest.mark.integration


def _pids(stack: Stack) -> dict[str, int | None]:
    es = stack.services["elasticsearch"]
    pg = stack.services["postgres"]
    redis = stack.services["redis"]
    return {
        "elasticsearch": read_pid(es.pidfile("node-1")),  # type: ignore[union-attr]
        "postgres": read_pid(pg.data / "postmaster.pid"),  # type: ignore[union-attr]
        "redis": read_pid(redis.pidfile),  # type: ignore[union-attr]
    }


def test_stack_up_twice_is_harmless(stack: Stack) -> None:
    before = _pids(stack)
    assert all(before.values())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "myaiserv",
            "stack",
            "up",
            "--dir",
            str(stack.config.dir),
            "--env-file",
            "-",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ES_URL=" in result.stdout
    assert _pids(stack) == before, "a second `stack up` restarted running servers"
    status = subprocess.run(
        [sys.executable, "-m", "myaiserv", "stack", "status", "--dir", str(stack.config.dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert status.returncode == 0
    assert all(service["running"] for service in json.loads(status.stdout).values())


def _free_block(start: int, count: int) -> int:
    port = start
    while any(port_open(port + i) or port_open(port + 100 + i) for i in range(count)):
        port += count
    return port


@pytest.mark.slow
def test_three_node_cluster_forms(stack: Stack) -> None:
    # A separate stack folder and ports: the main stack keeps running beside it.
    root = Path(tempfile.mkdtemp(prefix="myaiserv-es3-"))
    root.chmod(0o755)
    http = _free_block(19400, 3)
    config = StackConfig(dir=root / "stack", services=("elasticsearch",))
    config.elasticsearch.nodes = 3
    config.elasticsearch.http_port = http
    config.elasticsearch.transport_port = http + 100
    cluster = Stack(config)
    try:
        cluster.up()
        cluster.up()  # harmless on a running cluster too
        with urllib.request.urlopen(
            f"http://127.0.0.1:{http}/_cat/nodes?format=json&h=name,http_address,master",
            timeout=10,
        ) as resp:
            nodes = json.loads(resp.read())
        assert sorted(n["name"] for n in nodes) == ["node-1", "node-2", "node-3"]
        assert sorted(n["http_address"] for n in nodes) == [
            f"127.0.0.1:{http + i}" for i in range(3)
        ]
        assert sum(n["master"] == "*" for n in nodes) == 1
        # Every node answers on its own port, as itself, and sees the same cluster.
        uuids = set()
        for i in range(3):
            base = f"http://127.0.0.1:{http + i}"
            with urllib.request.urlopen(f"{base}/_nodes/_local", timeout=10) as resp:  # noqa: S310
                local = json.loads(resp.read())
            assert [n["name"] for n in local["nodes"].values()] == [f"node-{i + 1}"]
            state = f"{base}/_cluster/state/metadata?filter_path=metadata.cluster_uuid"
            with urllib.request.urlopen(state, timeout=10) as resp:  # noqa: S310
                uuids.add(json.loads(resp.read())["metadata"]["cluster_uuid"])
        assert len(uuids) == 1
    finally:
        cluster.down()
        shutil.rmtree(root, ignore_errors=True)
    assert not any(port_open(http + i) for i in range(3))
