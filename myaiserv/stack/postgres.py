"""PostgreSQL for the local stack: the machine's server binaries, a data folder of ours."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from myaiserv.kit.pgbin import find_bindir
from myaiserv.stack.config import PostgresConfig
from myaiserv.stack.process import (
    RunAs,
    StackError,
    ensure_port_free,
    pid_alive,
    port_open,
    read_pid,
    run,
    tail,
)

TEST_DATABASE_SUFFIX = "_test"


SERVER_TOOLS = ("postgres", "pg_ctl", "initdb")


def server_bindir() -> Path:
    """The newest PostgreSQL server's programs (``SERVER_TOOLS``, and psql beside them)."""
    bindir = find_bindir(SERVER_TOOLS)
    if bindir is None:
        raise StackError(
            f"no PostgreSQL binaries ({', '.join(SERVER_TOOLS)}) found; install them "
            "(`make system-deps`, or apt-get install postgresql) or set MYAISERV_PG_BINDIR"
        )
    return bindir


class PostgresService:
    name = "postgres"

    def __init__(self, root: Path, config: PostgresConfig, run_as: RunAs) -> None:
        self.root = root / "postgres"
        self.config = config
        self.run_as = run_as

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "logs" / "postgresql.log"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    def _pg_ctl(
        self, *args: str, timeout: float = 90, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(
            [server_bindir() / "pg_ctl", "-D", self.data.resolve(), *args],
            run_as=self.run_as,
            timeout=timeout,
            check=check,
        )

    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialised():
            return
        for sub in (self.data, self.log.parent, self.socket_dir):
            sub.mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)
        pwfile = self.root / ".pwfile"
        pwfile.write_text(self.config.password + "\n")
        self.run_as.own(self.root)
        try:
            run(
                [
                    server_bindir() / "initdb",
                    "-D",
                    self.data.resolve(),
                    "-U",
                    self.config.user,
                    f"--pwfile={pwfile.resolve()}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                run_as=self.run_as,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def running(self) -> bool:
        pid = read_pid(self.data / "postmaster.pid")
        return pid_alive(pid) and port_open(self.config.port)

    def start(self) -> None:
        self.init()
        if not self.running():
            ensure_port_free(self.config.port, what="PostgreSQL", option="--pg-port")
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.config.port} "
                f"-c unix_socket_directories={self.socket_dir.resolve()}"
            )
            proc = self._pg_ctl(
                "-l", str(self.log.resolve()), "-o", options, "-w", "-t", "60", "start", check=False
            )
            if proc.returncode != 0:
                raise StackError(f"PostgreSQL failed to start:\n{proc.stdout}\n{tail(self.log)}")
        for database in (self.config.database, self.config.database + TEST_DATABASE_SUFFIX):
            self.ensure_database(database)

    def psql(self, sql: str, database: str = "postgres") -> str:
        proc = run(
            [
                server_bindir() / "psql",
                "-h",
                self.socket_dir.resolve(),
                "-p",
                str(self.config.port),
                "-U",
                self.config.user,
                "-d",
                database,
                "-tAc",
                sql,
            ],
            run_as=self.run_as,
        )
        return proc.stdout.strip()

    def ensure_database(self, database: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
            raise StackError(f"refusing odd database name {database!r}")
        # The name is checked above; psql -c takes no bind parameters.
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'")  # noqa: S608
        if exists != "1":
            self.psql(f'CREATE DATABASE "{database}" OWNER "{self.config.user}"')

    def stop(self) -> None:
        if self.initialised() and pid_alive(read_pid(self.data / "postmaster.pid")):
            self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")

    def status(self) -> dict[str, object]:
        return {"running": self.running(), "url": self.config.url()}
