"""The web tier of the local stack: N API instances and indexers behind a real nginx, on
loopback — the Docker-free twin of ``docker compose up --scale web=N``.

Each instance is a ``myaiserv serve`` process on its own port, named ``web-<i>`` (the
``X-Instance`` header says which one answered); nginx balances over them and passes a
request on to the next instance when one refuses the connection or fails. Before the
first start, migrations and ``index init`` run against the stack. Processes run as the
invoking user from the current directory (they use the project's virtualenv).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from myaiserv.stack.config import StackConfig
from myaiserv.stack.process import (
    StackError,
    ensure_port_free,
    pid_alive,
    port_open,
    read_pid,
    tail,
    terminate,
    wait_until,
)


def find_nginx() -> Path:
    path = os.environ.get("MYAISERV_NGINX") or shutil.which("nginx")
    if not path and Path("/usr/sbin/nginx").exists():
        path = "/usr/sbin/nginx"
    if not path:
        raise StackError("nginx not found; install it (`make system-deps`) or set MYAISERV_NGINX")
    return Path(path)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class WebService:
    name = "web"

    def __init__(
        self, root: Path, config: StackConfig, *, extra_env: dict[str, str] | None = None
    ) -> None:
        self.root = root / "web"
        self.config = config
        self.web = config.web
        self.extra_env = extra_env or {}  # e.g. another database (tests)

    # -- processes --------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **self.config.env(),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
            **self.extra_env,
        }
        if self.config.elasticsearch.nodes > 1:
            env.setdefault("MYAISERV_ES__REPLICAS", "1")  # survive one node down
        # No share of the cores per process: each batch leases them from the others
        # (myaiserv/embeddings/cores.py), the shell's `myaiserv ingest` included.
        return env

    def _pidfile(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "myaiserv", *args],
                env={**self.env(), **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pidfile(name).write_text(f"{proc.pid}\n")

    def instance_names(self) -> list[str]:
        return [f"web-{i + 1}" for i in range(self.web.instances)]

    def instance_port(self, name: str) -> int:
        return self.web.first_instance_port + int(name.split("-")[1]) - 1

    def running_instance(self, name: str) -> bool:
        return pid_alive(read_pid(self._pidfile(name)))

    def start_instance(self, name: str) -> None:
        if self.running_instance(name):
            return
        port = self.instance_port(name)
        ensure_port_free(port, what=f"API instance {name}", option="--web-port")
        self._spawn(
            name,
            ["serve", "--host", "127.0.0.1", "--port", str(port)],
            {
                "MYAISERV_INSTANCE_NAME": name,
                "MYAISERV_WORKERS": str(self.web.workers),
                "PROMETHEUS_MULTIPROC_DIR": str((self.root / f"{name}.metrics").resolve()),
            },
        )

    def _migrate(self) -> None:
        for args in (["db", "upgrade"], ["index", "init"]):
            done = subprocess.run(
                [sys.executable, "-m", "myaiserv", *args],
                env=self.env(),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise StackError(f"`myaiserv {' '.join(args)}` failed:\n{done.stderr[-2000:]}")

    # -- nginx ------------------------------------------------------------------------

    def nginx_conf(self) -> str:
        root = self.root.resolve()
        servers = "\n".join(
            f"        server 127.0.0.1:{self.instance_port(n)} max_fails=1 fail_timeout=5s;"
            for n in self.instance_names()
        )
        user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
        return f"""# Written by `myaiserv stack up --web N`; edits are overwritten.
{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
daemon on;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/nginx-access.log;
    client_body_temp_path {root}/nginx-tmp/body;
    proxy_temp_path {root}/nginx-tmp/proxy;
    fastcgi_temp_path {root}/nginx-tmp/fastcgi;
    uwsgi_temp_path {root}/nginx-tmp/uwsgi;
    scgi_temp_path {root}/nginx-tmp/scgi;
    upstream web {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.web.port};
        client_max_body_size 50m;
        location = /nginx-health {{ return 200 "ok\\n"; }}
        location / {{
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-ID $request_id;
            # As docker/nginx.conf: a dead instance refuses the connection and the request
            # goes to the next one (POSTs too: nothing was sent). A request already sent
            # is never replayed, and the app's own 502/503 are passed through.
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 2s;
            proxy_read_timeout 300s;
            proxy_buffering off;  # server-sent events reach the client as they come
        }}
    }}
}}
"""

    def nginx_running(self) -> bool:
        return pid_alive(read_pid(self.root / "nginx.pid")) and port_open(self.web.port)

    def _start_nginx(self) -> None:
        if self.nginx_running():
            return
        ensure_port_free(self.web.port, what="nginx", option="--web-port")
        (self.root / "nginx-tmp").mkdir(parents=True, exist_ok=True)
        conf = self.root / "nginx.conf"
        conf.write_text(self.nginx_conf())
        done = subprocess.run(
            [str(find_nginx()), "-p", str(self.root.resolve()), "-c", str(conf.resolve())],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"nginx did not start:\n{done.stderr[-2000:]}")

    # -- the service --------------------------------------------------------------------

    def start(self) -> None:
        if not self.web.instances:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._migrate()
        for name in self.instance_names():
            self.start_instance(name)
        for i in range(self.web.indexers):
            name = f"indexer-{i + 1}"
            if not pid_alive(read_pid(self._pidfile(name))):
                port = self.web.first_indexer_metrics_port + i
                self._spawn(
                    name, ["indexer", "run"], {"MYAISERV_INDEXING__METRICS_PORT": str(port)}
                )
        self._start_nginx()
        for name in self.instance_names():
            self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 240) -> None:
        port = self.instance_port(name)
        try:
            wait_until(lambda: _ready(port), timeout=timeout, interval=0.5, what=name)
        except StackError as exc:
            raise StackError(f"{exc}\n{tail(self.root / f'{name}.log')}") from exc

    def stop(self) -> None:
        pid = read_pid(self.root / "nginx.pid")
        terminate(pid, timeout=30, what="nginx")
        names = [*self.instance_names(), *(f"indexer-{i + 1}" for i in range(self.web.indexers))]
        for name in names:
            terminate(read_pid(self._pidfile(name)), timeout=30, what=name)
            self._pidfile(name).unlink(missing_ok=True)

    def pids(self) -> dict[str, int]:
        """The tier's running processes by name (``web-<i>``, ``indexer-<i>``, ``nginx``):
        what a benchmark watches."""
        names = [*self.instance_names(), *(f"indexer-{i + 1}" for i in range(self.web.indexers))]
        files = {name: self._pidfile(name) for name in names}
        files["nginx"] = self.root / "nginx.pid"
        pids = {name: read_pid(path) for name, path in files.items()}
        return {name: pid for name, pid in pids.items() if pid is not None and pid_alive(pid)}

    def running(self) -> bool:
        return self.nginx_running() and all(self.running_instance(n) for n in self.instance_names())

    def status(self) -> dict[str, object]:
        return {
            "running": self.running(),
            "url": f"http://127.0.0.1:{self.web.port}",
            "nginx": self.nginx_running(),
            "instances": {
                n: {
                    "port": self.instance_port(n),
                    "pid": read_pid(self._pidfile(n)),
                    "running": self.running_instance(n),
                }
                for n in self.instance_names()
            },
            "indexers": {
                f"indexer-{i + 1}": pid_alive(read_pid(self._pidfile(f"indexer-{i + 1}")))
                for i in range(self.web.indexers)
            },
        }
