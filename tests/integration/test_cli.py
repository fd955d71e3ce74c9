"""`myaiserv` as an operator runs it: a process of its own, on this session's database,
through the bootstrap every command shares (settings, one transaction or the process's
resources, plain errors)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from indexers.worker import Worker
from myaiserv.config import Settings
from tests.support import make_tenant, operator_cli


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


async def test_requeue_puts_dead_letters_back_in_the_outbox(cli, resources) -> None:
    tenant = await make_tenant(resources)
    async with resources.sessionmaker() as session, session.begin():
        prompt_id = await session.scalar(
            text(
                "INSERT INTO prompts (id, tenant_id, name, labels) VALUES "
                "(gen_random_uuid(), :t, 'cli-requeue', '[[\"production\", 1]]') RETURNING id"
            ),
            {"t": tenant.id},
        )
        await session.execute(
            text(
                "INSERT INTO outbox (tenant_id, kind, entity_id, op, version) "
                "VALUES (:t, 'prompts', :id, 'upsert', 1)"
            ),
            {"t": tenant.id, "id": prompt_id},
        )
    indexing = resources.settings.indexing.model_copy(update={"build_max_attempts": 1})
    once = dataclasses.replace(
        resources, settings=resources.settings.model_copy(update={"indexing": indexing})
    )
    await Worker(once, name="cli-requeue").drain(idle_exit=True)

    usage = await cli("indexer", "requeue", "--kind", "prompts")
    assert usage.returncode == 2 and "give --id ID or --all" in usage.stderr
    missing = await cli("indexer", "requeue", "--id", str(uuid.uuid4()))
    assert missing.returncode == 1 and "no dead letter for" in missing.stderr

    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE prompts SET labels = '{}' WHERE id = :id"), {"id": prompt_id}
        )
    requeued = await cli("indexer", "requeue", "--id", str(prompt_id))
    assert requeued.returncode == 0, requeued.stderr
    first, last = requeued.stdout.splitlines()
    assert first.startswith(f"requeued prompts {prompt_id} (failed with build_error: ")
    assert last == "1 dead letter(s) requeued"
    async with resources.sessionmaker() as session:
        status = await session.scalar(
            text("SELECT index_status FROM prompts WHERE id = :id"), {"id": prompt_id}
        )
        queued = await session.scalar(
            text("SELECT count(*) FROM outbox WHERE entity_id = :id"), {"id": prompt_id}
        )
    assert (status, queued) == ("pending", 1)
    again = await cli("indexer", "requeue", "--kind", "prompts", "--all")
    assert again.returncode == 0 and again.stdout == "0 dead letter(s) requeued\n"
