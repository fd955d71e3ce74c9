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

from indexers.heartbeat import Heartbeat
from indexers.worker import Worker
from myaiserv.config import Settings
from myaiserv.db.heartbeats import HeartbeatRepository
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


async def test_indexer_status_reads_the_database_only(
    settings: Settings, database: str, resources, tmp_path: Path
) -> None:
    """The backlog per kind and the live indexers, without loading the model or opening
    Elasticsearch (every import the command made is listed by PYTHONPROFILEIMPORTTIME)."""
    tenant = await make_tenant(resources)
    beating = Heartbeat(resources, "indexer", name=f"indexer-status-{uuid.uuid4().hex[:6]}")
    beating.record(rows=4, chunks=9, tokens=1800)
    await beating.write()
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO outbox (tenant_id, kind, entity_id, op, version, available_at) "
                "VALUES (:t, 'runs', gen_random_uuid(), 'upsert', 1, now()), "
                "(:t, 'runs', gen_random_uuid(), 'upsert', 1, now() + interval '1 hour')"
            ),
            {"t": tenant.id},
        )
    command = operator_cli(settings, tmp_path, DATABASE_URL=database, PYTHONPROFILEIMPORTTIME="1")
    try:
        status = await asyncio.to_thread(command, "indexer", "status")
    finally:
        async with resources.sessionmaker() as session, session.begin():
            await session.execute(text("DELETE FROM outbox WHERE tenant_id = :t"), {"t": tenant.id})
            await HeartbeatRepository(session).remove(beating.name)
    assert status.returncode == 0, status.stderr[-2000:]
    body = json.loads(status.stdout)
    runs = body["backlog"]["runs"]
    assert runs["pending"] >= 2 and runs["due"] == runs["pending"] - 1  # one backs off
    assert body["pending"] >= 2 and body["live_indexers"] >= 1
    mine = next(p for p in body["indexers"] if p["name"] == beating.name)
    assert mine["alive"] and (mine["rows"], mine["chunks"], mine["tokens"]) == (4, 9, 1800)
    assert mine["last_beat_s"] < settings.indexing.heartbeat_ttl_s
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in status.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "myaiserv.db.heartbeats" in imported  # the listing is there
    assert not {"onnxruntime", "tokenizers", "elasticsearch", "redis"} & imported
    assert not any(m.startswith("myaiserv.embeddings") for m in imported)


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


async def test_ingest_a_folder_from_the_command_line(cli, resources, tmp_path: Path) -> None:
    """The README's quick start on a folder: what it stored and indexed, what it could
    not read, and progress lines on a stderr that is not a terminal."""
    tenant = f"cli-ingest-{uuid.uuid4().hex[:8]}"
    assert (await cli("tenants", "create", tenant)).returncode == 0
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    nonce = uuid.uuid4().hex
    (folder / "a.txt").write_text(f"Catalogues of libraries {nonce}. " * 40)
    (folder / "b.md").write_text(f"# Indexing\n\nThesauri and subject headings {nonce}.\n")
    (folder / "sub" / "c.html").write_text(
        f"<html><head><title>Retrieval</title></head><body><p>Recall {nonce}</p></body></html>"
    )
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (folder / "ignored.bin").write_bytes(b"\x00\x01")

    done = await cli("ingest", "--tenant", tenant, str(folder), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["documents"], summary["created"], summary["failed"]) == (3, 3, 1)
    assert summary["index_failed"] == 0 and summary["indexed_by"] in ("here", "indexers")
    assert summary["chunks"] >= 3 and summary["tokens"] > summary["chunks"]
    assert summary["chunks_per_s"] > 0 and summary["tokens_per_s"] > 0
    # --json keeps stderr for errors: no progress there.
    assert "ingest: " not in done.stderr

    again = await cli("ingest", "--tenant", tenant, str(folder))
    assert again.returncode == 0, again.stderr[-3000:]
    lines = again.stdout.splitlines()
    assert lines[0] == "documents: 3 (0 new, 3 already stored, 1 unreadable)"
    assert any(line.startswith("unreadable: ") and "broken.pdf" in line for line in lines)
    progress = [line for line in again.stderr.splitlines() if line.startswith("ingest: ")]
    assert progress and progress[0].startswith("ingest: ")
    assert "/4 stored" in progress[0] and "chunks/s" in progress[0]
