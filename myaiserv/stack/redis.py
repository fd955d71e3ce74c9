"""Redis for the local stack: the machine's redis-server, config and data in our folder.

With replicas, the first port starts as the primary, the next ones as its replicas, and
three Sentinels (``redis-server --sentinel``) watch them and promote a replica when the
primary dies. A node (re)started while Sentinels run joins whichever node they name as
the primary now, so restarting a killed primary brings it back as a replica.
"""

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

Reply = str | int | list["Reply"] | None


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


def parse_reply(buf: bytes, pos: int = 0) -> tuple[Reply, int]:
    """One RESP2 reply from ``buf`` at ``pos``; IndexError while it is incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise IndexError("incomplete line")
    kind, body = buf[pos : pos + 1], buf[pos + 1 : end].decode()
    pos = end + 2
    if kind in (b"+", b"-"):
        return body, pos
    if kind == b":":
        return int(body), pos
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise IndexError("incomplete bulk string")
        return buf[pos : pos + size].decode(errors="replace"), pos + size + 2
    if kind == b"*":
        items: list[Reply] = []
        for _ in range(max(int(body), 0)):
            item, pos = parse_reply(buf, pos)
            items.append(item)
        return (items if int(body) >= 0 else None), pos
    raise ValueError(f"not a RESP reply: {buf[:40]!r}")


def resp_command(*args: str) -> bytes:
    """A command in Redis's protocol (an array of bulk strings: any byte may appear)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def command(port: int, *args: str, timeout: float = 1.0, password: str = "") -> Reply:
    """One command to the server on ``port``, after AUTH when ``password`` is given
    (standard library only: the stack is managed before the application's imports); the
    command's reply, or None when nothing answers."""
    payload = (resp_command("AUTH", password) if password else b"") + resp_command(*args)
    replies: list[Reply] = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(payload)
            buf, pos = b"", 0
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buf += chunk
                try:
                    while len(replies) < (2 if password else 1):
                        reply, pos = parse_reply(buf, pos)
                        replies.append(reply)
                except IndexError:
                    continue
                return replies[-1]
    except (OSError, ValueError):
        return None


def ping(port: int, timeout: float = 1.0, password: str = "") -> bool:
    return command(port, "PING", timeout=timeout, password=password) == "PONG"


class RedisService:
    name = "redis"

    def __init__(self, root: Path, config: RedisConfig, run_as: RunAs) -> None:
        self.root = root / "redis"
        self.config = config
        self.run_as = run_as

    def _folder(self, port: int) -> Path:
        """The first node keeps the single server's folder; the others get their own."""
        if port == self.config.port:
            return self.root
        kind = "sentinel" if port in self.config.sentinel_ports() else "node"
        return self.root / f"{kind}-{port}"

    def pidfile_of(self, port: int) -> Path:
        return self._folder(port) / "redis.pid"

    @property
    def pidfile(self) -> Path:
        return self.pidfile_of(self.config.port)

    @property
    def log(self) -> Path:
        return self._folder(self.config.port) / "redis.log"

    def _common(self, port: int) -> list[str]:
        folder = self._folder(port)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        return [
            "# Written by `myaiserv stack up`; edits are overwritten.",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"port {port}",
            "daemonize yes",
            f"pidfile {self.pidfile_of(port).resolve()}",
            f"logfile {(folder / 'redis.log').resolve()}",
            f"dir {(folder / 'data').resolve()}",
        ]

    def write_node_config(self, port: int, primary: int) -> Path:
        lines = [
            *self._common(port),
            # Redis holds caches and rate-limit counters only: nothing to persist.
            'save ""',
            "appendonly no",
            "maxmemory 256mb",
            "maxmemory-policy allkeys-lru",
        ]
        if self.config.password:  # `stack up --secure`; replicas authenticate to the primary
            lines += [f"requirepass {self.config.password}", f"masterauth {self.config.password}"]
        if port != primary:
            lines.append(f"replicaof 127.0.0.1 {primary}")
        conf = self._folder(port) / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.run_as.own(self._folder(port))
        return conf

    def write_sentinel_config(self, port: int, primary: int) -> Path:
        """Sentinel rewrites its file with what it learns (epochs, peers, the primary);
        a Sentinel restarted beside running ones keeps it."""
        conf = self._folder(port) / "sentinel.conf"
        name, cfg = self.config.master_name, self.config
        quorum = cfg.sentinels // 2 + 1
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            "\n".join(
                [
                    *self._common(port),
                    f"sentinel monitor {name} 127.0.0.1 {primary} {quorum}",
                    f"sentinel down-after-milliseconds {name} {cfg.down_after_ms}",
                    f"sentinel failover-timeout {name} {cfg.failover_timeout_ms}",
                    f"sentinel parallel-syncs {name} 1",
                    *([f"sentinel auth-pass {name} {cfg.password}"] if cfg.password else []),
                ]
            )
            + "\n"
        )
        self.run_as.own(conf.parent)
        return conf

    def running_nodes(self) -> list[int]:
        """Ports of the servers and Sentinels whose process is alive."""
        ports = self.config.node_ports() + self.config.sentinel_ports()
        return [p for p in ports if pid_alive(read_pid(self.pidfile_of(p)))]

    def node_command(self, port: int, *args: str) -> Reply:
        """A command to a Redis server (with the stack's password; Sentinels take none)."""
        return command(port, *args, password=self.config.password)

    def answering(self, port: int) -> bool:
        if port in self.config.sentinel_ports():
            return ping(port)
        return ping(port, password=self.config.password)

    def running(self) -> bool:
        ports = self.config.node_ports() + self.config.sentinel_ports()
        return len(self.running_nodes()) == len(ports) and all(map(self.answering, ports))

    def master_port(self) -> int | None:
        """The primary's port as the running Sentinels name it (None without Sentinels)."""
        for port in self.config.sentinel_ports():
            reply = command(port, "SENTINEL", "get-master-addr-by-name", self.config.master_name)
            if isinstance(reply, list) and len(reply) == 2:
                return int(str(reply[1]))
        return None

    def role(self, port: int) -> str:
        reply = self.node_command(port, "ROLE")
        return str(reply[0]) if isinstance(reply, list) and reply else "down"

    def _sentinel_state(self, port: int) -> dict[str, str]:
        reply = command(port, "SENTINEL", "master", self.config.master_name)
        if not isinstance(reply, list):
            return {}
        return {str(k): str(v) for k, v in zip(reply[::2], reply[1::2], strict=False)}

    def _ready(self, primary: int) -> bool:
        """Every node replicates from ``primary`` and every Sentinel knows them all and its
        peers: a failover can happen from here on."""
        for port in self.config.node_ports():
            reply = self.node_command(port, "ROLE")
            if not isinstance(reply, list) or not reply:
                return False
            if port != primary and reply[:4] != ["slave", "127.0.0.1", primary, "connected"]:
                return False
        for port in self.config.sentinel_ports():
            state = self._sentinel_state(port)
            if (
                state.get("port") != str(primary)
                or "s_down" in state.get("flags", "s_down")
                or int(state.get("num-slaves", 0)) < self.config.replicas
                or int(state.get("num-other-sentinels", 0)) < self.config.sentinels - 1
            ):
                return False
        return True

    def start(self) -> None:
        if self.running() and (not self.config.replicas or self._ready(self.master_port() or 0)):
            return
        cfg = self.config
        fresh = not self.running_nodes()
        primary = (None if fresh else self.master_port()) or cfg.port
        alive = set(self.running_nodes())
        server = find_redis_server()
        for port in cfg.node_ports():
            if port not in alive:
                ensure_port_free(port, what="Redis", option="--redis-port")
                run([server, self.write_node_config(port, primary).resolve()], run_as=self.run_as)
        for port in cfg.sentinel_ports():
            if port not in alive:
                ensure_port_free(port, what="Redis Sentinel", option="--redis-sentinel-port")
                conf = self._folder(port) / "sentinel.conf"
                if fresh or not conf.exists():
                    conf = self.write_sentinel_config(port, primary)
                run([server, conf.resolve(), "--sentinel"], run_as=self.run_as)
        try:
            wait_until(
                lambda: all(map(self.answering, cfg.node_ports() + cfg.sentinel_ports())),
                timeout=30,
                interval=0.2,
                what="Redis",
            )
            if cfg.replicas:
                wait_until(
                    lambda: self._ready(self.master_port() or 0),
                    timeout=60,
                    interval=0.5,
                    what="Redis replicas and Sentinels to agree on the primary",
                )
        except StackError as exc:
            raise StackError(f"{exc}\n{tail(self.log)}") from exc

    def stop(self) -> None:
        # Sentinels first: stopping the primary under them would start a failover.
        for port in [*self.config.sentinel_ports(), *reversed(self.config.node_ports())]:
            terminate(read_pid(self.pidfile_of(port)), what=f"Redis on {port}")
            self.pidfile_of(port).unlink(missing_ok=True)

    def status(self) -> dict[str, object]:
        report: dict[str, object] = {"running": self.running(), "url": self.config.url()}
        if self.config.replicas:
            report["nodes"] = {str(p): self.role(p) for p in self.config.node_ports()}
            report["sentinels"] = {
                str(p): "up" if self.answering(p) else "down" for p in self.config.sentinel_ports()
            }
            report["primary"] = self.master_port()
        return report
