"""The local stack's Zipkin: `stack up` starts it on loopback, it takes spans in Zipkin's
v2 JSON and gives them back by trace id, `stack status` lists it, `stack down` stops it.

A stack of its own (another folder, a free port): the developer's Zipkin keeps running.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from myaiserv.evaluation.harness import free_port
from myaiserv.stack.process import port_open

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "myaiserv", "stack", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _outside_address() -> str | None:
    """This machine's address on its way out (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: routed, never answered
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") else address


def _call(url: str, body: object = None) -> tuple[int, object]:
    """Status and parsed JSON (None when the body is not JSON) of a GET, or of a POST
    of ``body`` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - our own loopback URLs
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        return exc.code, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def _trace(base: str, trace_id: str) -> list[dict[str, object]]:
    """The trace's spans, once stored: the collector stores after its 202."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = _call(f"{base}/api/v2/trace/{trace_id}")
        if status == 200 and isinstance(body, list):
            return body
        assert status == 404, status
        time.sleep(0.2)
    return []


def _span(trace_id: str) -> dict[str, object]:
    return {
        "traceId": trace_id,
        "id": trace_id[:16],
        "name": "post /v1/search",
        "kind": "SERVER",
        "timestamp": int(time.time() * 1_000_000),
        "duration": 1500,
        "localEndpoint": {"serviceName": "myaiserv-test"},
        "tags": {"http.method": "POST"},
    }


def test_zipkin_starts_takes_a_span_returns_it_and_stops() -> None:
    root = Path(tempfile.mkdtemp(prefix="myaiserv-zipkin-"))
    root.chmod(0o755)  # the servers' user must traverse it
    stack_dir, env_file, port = root / "stack", root / ".env", free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        up = _stack(
            "up",
            "--dir",
            str(stack_dir),
            "--services",
            "zipkin",
            "--zipkin-port",
            str(port),
            "--env-file",
            str(env_file),
        )
        assert up.returncode == 0, up.stderr
        written = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        assert written == {
            "MYAISERV_TRACING__EXPORTER": "zipkin",
            "MYAISERV_TRACING__ENDPOINT": f"{base}/api/v2/spans",
            "MYAISERV_TRACING__UI_URL": f"{base}/zipkin/traces/{{trace_id}}",
        }

        status, health = _call(f"{base}/health")
        assert status == 200 and isinstance(health, dict) and health["status"] == "UP"
        outside = _outside_address()
        if outside is not None:
            assert not port_open(port, host=outside), "Zipkin must listen on loopback only"

        trace_id = secrets.token_hex(16)
        status, _ = _call(written["MYAISERV_TRACING__ENDPOINT"], [_span(trace_id)])
        assert status == 202
        trace = _trace(base, trace_id)
        assert [(s["traceId"], s["name"]) for s in trace] == [(trace_id, "post /v1/search")]
        assert trace[0]["localEndpoint"] == {"serviceName": "myaiserv-test"}
        # The page the app links to (UI_URL) is served.
        status, _ = _call(written["MYAISERV_TRACING__UI_URL"].format(trace_id=trace_id))
        assert status == 200

        listed = _stack("status", "--dir", str(stack_dir))
        assert listed.returncode == 0, listed.stdout
        assert json.loads(listed.stdout)["zipkin"]["running"] is True
        again = _stack("up", "--dir", str(stack_dir), "--env-file", "-")
        assert again.returncode == 0, again.stderr  # harmless on a running Zipkin
    finally:
        down = _stack("down", "--dir", str(stack_dir))
        shutil.rmtree(root, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert not port_open(port)
