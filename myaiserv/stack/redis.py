"""Redis for the local stack: the machine's redis-server, config and data in our folder."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from myaiserv.stack.config import RedisConfig
from myaiserv.stack.process import (
    RunAs,
    StackError,
    ensure_port_free,
    pid_alive,
    read_pid,
    run,
    tail,
    terminate,
    wait_until,
)


def find_redis_server() -> Path:
    path = os.environ.get("MYAISERV_REDIS_SERVER") or shutil.which("redis-server")
    if not path:
        for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
            if Path(candidate).exists():
                path = candidate
                break
    if not path:
        raise StackError(
            "redis-server not found; install it (`make system-deps`, or apt-get install "
            "redis-server) or set MYAISERV_REDIS_SERVER"
        )
    return Path(path)


def ping(port: int, timeout: float = 1.0, password: str = "") -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            if password:
                sock.sendall(resp_command("AUTH", password))
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def resp_command(*args: str) -> bytes:
    """A command in Redis's protocol (an array of bulk strings: any byte may appear)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RedisService:
    name = "redis"

    def __init__(self, root: Path, config: RedisConfig, run_as: RunAs) -> None:
        self.root = root / "redis"
        self.config = config
        self.run_as = run_as

    @property
    def pidfile(self) -> Path:
        return self.root / "redis.pid"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    def _write_config(self) -> Path:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        conf = self.root / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "# Written by `myaiserv stack up`; edits are overwritten.",
                    "bind 127.0.0.1",
                    "protected-mode yes",
                    f"port {self.config.port}",
                    "daemonize yes",
                    f"pidfile {self.pidfile.resolve()}",
                    f"logfile {self.log.resolve()}",
                    f"dir {(self.root / 'data').resolve()}",
                    # Redis holds caches and rate-limit counters only: nothing to persist.
                    'save ""',
                    "appendonly no",
                    "maxmemory 256mb",
                    "maxmemory-policy allkeys-lru",
                    *([f"requirepass {self.config.password}"] if self.config.password else []),
                ]
            )
            + "\n"
        )
        self.run_as.own(self.root)
        return conf

    def running(self) -> bool:
        return pid_alive(read_pid(self.pidfile)) and self.ping()

    def ping(self) -> bool:
        return ping(self.config.port, password=self.config.password)

    def start(self) -> None:
        if self.running():
            return
        ensure_port_free(self.config.port, what="Redis", option="--redis-port")
        conf = self._write_config()
        run([find_redis_server(), conf.resolve()], run_as=self.run_as)
        try:
            wait_until(self.ping, timeout=30, interval=0.2, what="Redis")
        except StackError as exc:
            raise StackError(f"{exc}\n{tail(self.log)}") from exc

    def stop(self) -> None:
        terminate(read_pid(self.pidfile), what="Redis")
        self.pidfile.unlink(missing_ok=True)

    def status(self) -> dict[str, object]:
        return {"running": self.running(), "url": self.config.url()}
