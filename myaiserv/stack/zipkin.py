"""Zipkin for the local stack: where `make run`'s traces go, and where they are looked at.

Zipkin's own server jar from Maven Central (fetched once, as Elasticsearch's zip is), on
the JDK the stack finds (Java 17+), with its in-memory store bounded by
``ZipkinConfig.max_spans``. Armeria, its HTTP server, listens on loopback only: it
takes spans from anyone who reaches it and shows them to anyone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from myaiserv.stack import java
from myaiserv.stack.config import ZIPKIN_ARTIFACT, ZipkinConfig
from myaiserv.stack.process import (
    RunAs,
    StackError,
    ensure_port_free,
    pid_alive,
    read_pid,
    tail,
    terminate,
    wait_until,
)

MIN_JAVA = 17


def server_jar(version: str) -> Path:
    """The cached jar, fetched once through Maven (at `stack up`, never while serving)."""
    return java.maven_artifact(
        ZIPKIN_ARTIFACT.format(version=version), "zipkin", f"zipkin-server-{version}-exec.jar"
    )


class ZipkinService:
    name = "zipkin"

    def __init__(self, root: Path, config: ZipkinConfig, run_as: RunAs) -> None:
        self.root = root / "zipkin"
        self.config = config
        self.run_as = run_as

    @property
    def pidfile(self) -> Path:
        return self.root / "zipkin.pid"

    @property
    def log(self) -> Path:
        return self.root / "zipkin.log"

    @property
    def jar(self) -> Path:
        return self.root / f"zipkin-server-{self.config.version}-exec.jar"

    def install(self) -> None:
        """A world-readable copy in the stack folder: the service user may not reach the
        download cache (root's home, when the stack is managed by root)."""
        if self.jar.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.jar.with_suffix(".partial")
        shutil.copyfile(server_jar(self.config.version), partial)
        partial.chmod(0o644)
        partial.rename(self.jar)

    def command(self, java_home: Path) -> list[str]:
        cfg = self.config
        return [
            str(java_home / "bin" / "java"),
            f"-Xms{cfg.heap}",
            f"-Xmx{cfg.heap}",
            "-jar",
            str(self.jar),
            # Armeria's one port, replaced whole: the address it binds, then its port
            # and protocol (Zipkin's default binds every interface, on 9411).
            "--armeria.ports[0].ip=127.0.0.1",
            f"--armeria.ports[0].port={cfg.port}",
            "--armeria.ports[0].protocols[0]=http",
        ]

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),
            "STORAGE_TYPE": "mem",
            "MEM_MAX_SPANS": str(self.config.max_spans),
            # Zipkin tracing itself would fill its own store with its own requests.
            "SELF_TRACING_ENABLED": "false",
            # No Kafka, RabbitMQ, ActiveMQ or Eureka here: HTTP (and gRPC, on the same
            # port) only.
            "COLLECTOR_KAFKA_ENABLED": "false",
            "COLLECTOR_RABBITMQ_ENABLED": "false",
            "COLLECTOR_ACTIVEMQ_ENABLED": "false",
            "DISCOVERY_EUREKA_ENABLED": "false",
        }

    def running(self) -> bool:
        return pid_alive(read_pid(self.pidfile))

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.config.url}/health", timeout=2) as resp:  # noqa: S310
                body = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return isinstance(body, dict) and body.get("status") == "UP"

    def start(self, timeout: float = 120) -> None:
        if self.running() and self.healthy():
            return
        self.install()
        java_home = java.find_java_home(
            MIN_JAVA, what="Zipkin", env_vars=("MYAISERV_ZIPKIN_JAVA_HOME",)
        )
        if not self.running():
            ensure_port_free(self.config.port, what="Zipkin", option="--zipkin-port")
            self.root.mkdir(parents=True, exist_ok=True)
            self.run_as.own(self.root)
            with open(self.log, "ab") as log:
                proc = subprocess.Popen(
                    self.command(java_home),
                    env=self.env(),
                    cwd=self.root,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # `stack up` returns; Zipkin keeps running
                    **self.run_as.popen_kwargs(),
                )
            self.pidfile.write_text(f"{proc.pid}\n")
        try:
            wait_until(self._up_or_dead, timeout=timeout, interval=0.5, what="Zipkin")
        except StackError as exc:
            raise StackError(f"{exc}\n{tail(self.log)}") from exc
        if not self.healthy():
            raise StackError(f"Zipkin exited while starting:\n{tail(self.log)}")

    def _up_or_dead(self) -> bool:
        return not self.running() or self.healthy()

    def stop(self) -> None:
        terminate(read_pid(self.pidfile), timeout=30, what="Zipkin")
        self.pidfile.unlink(missing_ok=True)

    def status(self) -> dict[str, object]:
        return {
            "running": self.running() and self.healthy(),
            "url": self.config.url,
            "ui": f"{self.config.url}/zipkin/",
        }
