"""The local stack as a whole: up, down, status, and one service at a time."""

from __future__ import annotations

import fcntl
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from myaiserv.stack.config import SERVICES, StackConfig
from myaiserv.stack.elasticsearch import ElasticsearchService
from myaiserv.stack.postgres import PostgresService
from myaiserv.stack.process import (
    StackError,
    ensure_traversable,
    read_pid,
    service_user,
    signal_tree,
)
from myaiserv.stack.redis import RedisService
from myaiserv.stack.web import WebService
from myaiserv.stack.zipkin import ZipkinService

Service = ElasticsearchService | PostgresService | RedisService | ZipkinService | WebService


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_as = service_user()
        root = config.dir.resolve()
        self.services: dict[str, Service] = {
            "postgres": PostgresService(root, config.postgres, self.run_as),
            "redis": RedisService(root, config.redis, self.run_as),
            "elasticsearch": ElasticsearchService(root, config.elasticsearch, self.run_as),
            "zipkin": ZipkinService(root, config.zipkin, self.run_as),
        }
        self.web = WebService(root, config)

    @classmethod
    def from_dir(cls, stack_dir: Path) -> Stack:
        config = StackConfig.load(stack_dir)
        if config is None:
            raise StackError(f"no stack in {stack_dir}: run `myaiserv stack up` first")
        return cls(config)

    def selected(self) -> list[Service]:
        return [self.services[name] for name in SERVICES if name in self.config.services]

    def service(self, name: str) -> Service:
        if name == "web" and self.config.web.instances:
            return self.web
        if name not in self.config.services:
            raise StackError(f"{name} is not part of the stack in {self.config.dir}")
        return self.services[name]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Two `stack up`s at once (two terminals, parallel tests) must not race."""
        self.config.dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def up(self) -> list[str]:
        """Start whatever is not running; returns notes for the operator."""
        notes: list[str] = []
        with self._locked():
            previous = StackConfig.load(self.config.dir)
            changed = previous is not None and previous.infra_json() != self.config.infra_json()
            if (
                previous is not None
                and changed
                and any(self._running(s) for s in Stack(previous).selected())
            ):
                raise StackError(
                    f"a stack with other settings is running in {self.config.dir}; "
                    "run `myaiserv stack down` first"
                )
            if previous is not None and previous.web != self.config.web:
                Stack(previous).web.stop()  # the web tier changes shape: restart it
            self.config.dir.mkdir(parents=True, exist_ok=True)
            for parent in ensure_traversable(self.config.dir, self.run_as):
                notes.append(f"made {parent} searchable (o+x) for '{self.run_as.name}'")
            self.run_as.own(self.config.dir)
            self.config.save()
            # Elasticsearch takes longest to start; the others come up meanwhile.
            with ThreadPoolExecutor(max_workers=len(self.services)) as pool:
                futures = [pool.submit(s.start) for s in self.selected()]
                errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                raise StackError("\n".join(str(e) for e in errors))
            # The web tier needs the others up (it migrates, then serves).
            self.web.start()
        return notes

    def down(self) -> None:
        with self._locked():
            self.web.stop()
            for service in reversed(self.selected()):
                service.stop()

    def start(self, name: str) -> None:
        with self._locked():
            self.service(name).start()

    def stop(self, name: str) -> None:
        with self._locked():
            self.service(name).stop()

    def pause(self, name: str) -> None:
        """Hang a server (SIGSTOP it and every process it started, e.g. PostgreSQL's
        postmaster and backends): it accepts connections and answers nothing, as a
        server stuck on a dead disk or a long GC pause does. ``resume`` thaws it."""
        for pid in self._server_pids(name):
            signal_tree(pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        for pid in self._server_pids(name):
            signal_tree(pid, signal.SIGCONT)

    def _server_pids(self, name: str) -> list[int | None]:
        service = self.service(name)
        if isinstance(service, ElasticsearchService):
            return [read_pid(service.pidfile(node)) for node in service.running_nodes()]
        if isinstance(service, PostgresService):
            return [read_pid(service.data / "postmaster.pid")]
        if isinstance(service, RedisService):
            return [read_pid(service.pidfile)]
        raise StackError(f"{name} cannot be paused")

    @staticmethod
    def _running(service: Service) -> bool:
        if isinstance(service, ElasticsearchService | RedisService):
            return bool(service.running_nodes())
        return service.running()

    def status(self) -> dict[str, dict[str, object]]:
        report = {s.name: s.status() for s in self.selected()}
        if self.config.web.instances:
            report["web"] = self.web.status()
        return report


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Set these keys in a dotenv file, keeping every other line the user wrote there."""
    lines = path.read_text().splitlines() if path.exists() else []
    remaining = dict(values)
    out: list[str] = []
    for line in lines:
        key = (
            line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#")
            else None
        )
        if key in remaining:
            out.append(f"{key}={remaining.pop(key)}")
        else:
            out.append(line)
    if remaining and not any("myaiserv stack up" in line for line in out):
        out.append("# Local stack URLs, written by `myaiserv stack up`.")
    out += [f"{key}={value}" for key, value in remaining.items()]
    path.write_text("\n".join(out) + "\n")
    if any(key.endswith("PASSWORD") for key in values):
        path.chmod(0o600)
