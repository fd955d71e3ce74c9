"""`myaiserv` as an operator runs it: a process of its own, on this session's database,
through the bootstrap every command shares (settings, one transaction or the process's
resources, plain errors)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from myaiserv.config import Settings
from tests.support import operator_cli


@pytest.fixture
def cli(settings: Settings, database: str, tmp_path: Path):
    """Run `myaiserv ARGS` in a folder of its own (no .env there), off the event loop."""
    command = operator_cli(settings, tmp_path, DATABASE_URL=database)

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(command, *args)

    return run


async def test_tenant_keys_from_the_command_line(cli) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = await cli("tenants", "create", name)
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert lines[0].startswith(f"tenant:  {name} (") and lines[1] == "scopes:  read,write,admin"
    assert lines[2].startswith("api key: mas_")
    assert "cannot be shown again" in created.stderr

    again = await cli("tenants", "create", name)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr == f"myaiserv: tenant {name!r} already exists\n"

    issued = await cli("tenants", "key", name, "--name", "ci", "--scopes", "read")
    assert issued.returncode == 0, issued.stderr
    assert issued.stdout.splitlines()[1] == "scopes:  read"
    plaintext = issued.stdout.splitlines()[2].removeprefix("api key: ")
    prefix = "_".join(plaintext.split("_")[:2])  # mas_<prefix>_<secret>

    revoked = await cli("tenants", "revoke-key", prefix)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked {prefix} (ci) at ")

    keys = await cli("tenants", "keys", name)
    assert keys.returncode == 0, keys.stderr
    rows = sorted(line.split("\t")[1:4] for line in keys.stdout.splitlines())
    assert rows == [["bootstrap", "read,write,admin", "active"], ["ci", "read", "revoked"]]

    unknown = await cli("tenants", "keys", f"{name}-missing")
    assert unknown.returncode == 1
    assert unknown.stderr == f"Error: tenant '{name}-missing' not found\n"

    audit = await cli("audit", "--tenant", name, "--action", "key.")
    assert audit.returncode == 0, audit.stderr
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert actions == ["key.revoked", "key.created", "key.created"]


async def test_indexer_status_opens_and_closes_the_resources(cli) -> None:
    status = await cli("indexer", "status")
    assert status.returncode == 0, status.stderr
    assert set(json.loads(status.stdout)) == {"pending", "oldest_age_s", "dead_letters"}
