"""The container engine the production topology runs on: Docker where a Docker engine
answers, otherwise Debian's podman, serving the Docker API that compose talks to.

podman here runs as root with ``runc`` and the cgroupfs manager (``crun`` refuses this
kernel's hybrid cgroups) and explicit ulimits, from ``docker/local/podman/containers.conf``;
its images, containers and volumes live under ``~/.cache/myaiserv/podman``, so built
images survive between runs. Two things Docker's daemon does by itself are started here
beside ``podman system service``, both detached so the topology outlives the command
that started it:

- health checks: podman runs them from systemd timers, and these machines have no
  systemd, so a container would stay "starting" and compose's ``depends_on:
  service_healthy`` would wait forever. The health ticker (``python -m tooling.topology
  tick``) runs each running container's check at its own interval through the API.
- the API socket itself, which ``docker-compose`` reaches through DOCKER_HOST.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "myaiserv"
PODMAN_HOME = CACHE / "podman"
RUN_DIR = Path("/run/myaiserv-podman")
SOCKET = RUN_DIR / "podman.sock"
CONTAINERS_CONF = ROOT / "docker" / "local" / "podman" / "containers.conf"


class EngineError(RuntimeError):
    pass


@dataclass
class Engine:
    kind: str  # "docker" or "podman"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cli(self) -> str:
        return self.kind

    def run(
        self, *args: str, check: bool = True, capture: bool = False, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.cli, *args],
            env={**os.environ, **self.env},
            check=check,
            text=True,
            capture_output=capture,
            timeout=timeout,
        )

    def compose_command(self) -> list[str]:
        """Compose v2 (the Docker CLI plugin) where present, else docker-compose 1.29,
        which reads the same file (format 2.4) and talks to podman's Docker API."""
        if self.kind == "docker" and _succeeds(["docker", "compose", "version"]):
            return ["docker", "compose"]
        if shutil.which("docker-compose"):
            return ["docker-compose"]
        raise EngineError("neither `docker compose` nor docker-compose is installed")


def _succeeds(command: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        return (
            subprocess.run(
                command, env=env, capture_output=True, timeout=20, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def podman_env() -> dict[str, str]:
    """What every podman command and the API service see: the project's engine settings
    and its storage under the cache (written here: storage.conf takes no variables)."""
    PODMAN_HOME.mkdir(parents=True, exist_ok=True)
    storage_conf = PODMAN_HOME / "storage.conf"
    text = (
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{PODMAN_HOME / "storage"}"\n'
        f'runroot = "{RUN_DIR / "storage"}"\n'
    )
    if not storage_conf.exists() or storage_conf.read_text() != text:
        storage_conf.write_text(text)
    return {
        "CONTAINERS_CONF": str(CONTAINERS_CONF),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
        "DOCKER_HOST": f"unix://{SOCKET}",
    }


def detect() -> Engine:
    """Docker when its daemon answers (the compose file's own public images), else podman
    (MYAISERV_ENGINE=docker|podman overrides)."""
    wanted = os.environ.get("MYAISERV_ENGINE", "")
    if wanted not in ("", "docker", "podman"):
        raise EngineError(f"MYAISERV_ENGINE must be docker or podman, not {wanted!r}")
    if wanted != "podman" and shutil.which("docker") and _succeeds(["docker", "info"]):
        return Engine("docker")
    if wanted == "docker":
        raise EngineError("MYAISERV_ENGINE=docker, but no Docker engine answers `docker info`")
    if not shutil.which("podman"):
        raise EngineError(
            "no container engine: no Docker daemon answers and podman is not installed "
            "(make compose-deps installs podman and its helpers from Debian)"
        )
    return Engine("podman", podman_env())


# --- the podman API service and the health ticker ---------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def api(method: str, path: str, timeout: float = 30.0) -> tuple[int, object]:
    """One call to podman's libpod API on the service's socket."""
    conn = UnixHTTPConnection(SOCKET, timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body) if body else None
    except ValueError:
        return response.status, body.decode(errors="replace")


def _alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _detach(command: list[str], env: dict[str, str], log: Path, pidfile: Path) -> None:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
    pidfile.write_text(str(proc.pid))


def start_podman_service(engine: Engine) -> None:
    """The Docker-compatible API on SOCKET and the health ticker, each started once."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    service_pid = RUN_DIR / "service.pid"
    if _alive(service_pid) is None:
        SOCKET.unlink(missing_ok=True)
        _detach(
            ["podman", "system", "service", "--time=0", f"unix://{SOCKET}"],
            engine.env,
            PODMAN_HOME / "service.log",
            service_pid,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            if api("GET", "/_ping", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise EngineError(
                f"podman's API did not answer on {SOCKET} (see {PODMAN_HOME}/service.log)"
            )
        time.sleep(0.3)
    ticker_pid = RUN_DIR / "ticker.pid"
    if _alive(ticker_pid) is None:
        _detach(
            [sys.executable, "-m", "tooling.topology", "tick"],
            engine.env,
            PODMAN_HOME / "ticker.log",
            ticker_pid,
        )


def stop_podman_service() -> None:
    for name in ("ticker.pid", "service.pid"):
        pid = _alive(RUN_DIR / name)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        (RUN_DIR / name).unlink(missing_ok=True)


def _interval_s(config: dict[str, object]) -> float:
    """Docker's Interval is in nanoseconds; 30 s when unset, as Docker's default."""
    value = config.get("Interval") or 0
    return max(float(value) / 1e9, 1.0) if isinstance(value, int | float) and value else 30.0


def tick_forever() -> None:
    """Runs every running container's health check at its interval, as Docker's daemon
    does, until killed. Checks run one at a time: at most one `exec` in flight keeps the
    ticker's own load small on two cores, and a check that hangs is bounded by its own
    timeout (podman enforces it)."""
    due: dict[str, float] = {}
    intervals: dict[str, float] = {}
    while True:
        now = time.monotonic()
        try:
            status, listed = api("GET", "/v4.0.0/libpod/containers/json", timeout=10)
        except OSError:
            time.sleep(2)
            continue
        running = {c["Id"] for c in listed} if status == 200 and isinstance(listed, list) else set()
        for cid in running - intervals.keys():
            _, inspected = api("GET", f"/v4.0.0/libpod/containers/{cid}/json", timeout=10)
            config = inspected.get("Config", {}) if isinstance(inspected, dict) else {}
            check = config.get("Healthcheck") if isinstance(config, dict) else None
            test = check.get("Test") if isinstance(check, dict) else None
            if not test or test[0] == "NONE":
                intervals[cid] = 0.0
                continue
            intervals[cid] = _interval_s(check)
            # The first check as soon as it starts: compose waits on "healthy".
            due[cid] = now + 1.0
        for cid in list(intervals):
            if cid not in running:
                intervals.pop(cid)
                due.pop(cid, None)
        for cid, when in sorted(due.items(), key=lambda item: item[1]):
            if when > time.monotonic() or cid not in running:
                continue
            with contextlib.suppress(OSError):
                api("GET", f"/v4.0.0/libpod/containers/{quote(cid)}/healthcheck", timeout=120)
            due[cid] = time.monotonic() + intervals[cid]
        time.sleep(1.0)
