"""pg_dump and pg_restore: found on the machine, given the app's database URL, run with
the password in the environment (never on a command line others can read in ps)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from myaiserv.backup.errors import BackupError
from myaiserv.kit.pgbin import find_bindir

# asyncpg's ``ssl`` values and libpq's ``sslmode`` share their names.
_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


@dataclass(frozen=True)
class PgConnection:
    host: str
    port: int
    user: str
    password: str | None
    database: str
    sslmode: str | None = None

    @classmethod
    def from_url(cls, url: str) -> PgConnection:
        parsed = make_url(url)
        ssl = parsed.query.get("sslmode") or parsed.query.get("ssl")
        if isinstance(ssl, tuple):
            ssl = ssl[-1]
        if ssl in ("true", "1"):
            ssl = "require"
        return cls(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password,
            database=parsed.database or "",
            sslmode=ssl if ssl in _SSLMODES else None,
        )

    def args(self) -> list[str]:
        """Connection options for the client tools: never the password."""
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", self.database]

    def env(
        self, base: Mapping[str, str] | None = None, *, connect_timeout_s: float = 10
    ) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        for stale in ("PGPASSWORD", "PGSSLMODE", "PGSERVICE", "PGOPTIONS"):
            env.pop(stale, None)
        if self.password:
            env["PGPASSWORD"] = self.password
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        env["PGAPPNAME"] = "myaiserv-backup"
        env["PGCONNECT_TIMEOUT"] = str(max(2, int(connect_timeout_s)))
        return env


def find_tool(name: str) -> Path:
    """The newest ``name`` (pg_dump, pg_restore) on the machine."""
    bindir = find_bindir((name,))
    if bindir is None:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client tools (Debian: "
            "postgresql-client-N, N at least the server's major version) or set "
            "MYAISERV_PG_BINDIR to the folder holding them"
        )
    return bindir / name


def tool_major(tool: Path) -> int:
    """``pg_dump (PostgreSQL) 15.18 (Debian ...)`` -> 15."""
    proc = subprocess.run(
        [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise BackupError(f"{tool} --version did not answer as a PostgreSQL tool: {proc.stdout}")
    return int(match.group(1))


async def locate_tool(name: str) -> tuple[Path, int]:
    """``find_tool`` and ``tool_major`` off the event loop: the tool and its major version."""
    tool = await asyncio.to_thread(find_tool, name)
    return tool, await asyncio.to_thread(tool_major, tool)


def run_tool(
    args: Sequence[str | os.PathLike[str]], env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a client tool to completion; its stderr becomes the error's message."""
    name = Path(str(args[0])).name
    try:
        proc = subprocess.run(
            [str(a) for a in args],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(
            f"{name} ran longer than {timeout:.0f}s (MYAISERV_BACKUP__TIMEOUT_S)"
        ) from None
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip()[-3000:]
        raise BackupError(f"{name} failed (exit {proc.returncode}): {output}")
    return proc
