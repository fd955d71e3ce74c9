"""Backups end to end: a tenant's records written through the API and indexed; `backup`
takes the Elasticsearch snapshot, then (after more writes, already indexed there) the
dump; a fresh second stack on other ports gets the backup through `restore`. PostgreSQL
rows, index documents and a sample of records match the backup, the restored stack
serves searches with the restored API key, and an indexer there catches up with the
writes made between the snapshot and the dump. `restore` refuses to replace data
without --yes, and replaces it with it."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, table
from sqlalchemy.engine import make_url

from myaiserv.app import create_app
from myaiserv.backup.errors import BackupError
from myaiserv.backup.manifest import ES_FILES, load
from myaiserv.backup.restore import RestoreReport, restore
from myaiserv.backup.take import CATCH_UP_MARGIN, backup
from myaiserv.config import BackupSettings, Settings
from myaiserv.db import migrate
from myaiserv.db.models import Document, OutboxEvent
from myaiserv.embeddings.model import Embedder
from myaiserv.evaluation.harness import free_port
from myaiserv.resources import Resources, open_resources
from myaiserv.search.kinds import KINDS
from myaiserv.stack.config import StackConfig
from myaiserv.stack.manager import Stack
from tests.support import TenantKey, admin_sql, drain, make_tenant, operator_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Source:
    settings: Settings
    resources: Resources
    tenant: TenantKey
    ids: dict[str, str]  # name -> document id
    folder: Path


async def _drop_indices(res: Resources) -> None:
    prefix = res.settings.es.index_prefix
    names = list((await res.es.indices.get(index=f"{prefix}-*", expand_wildcards="all")).body)
    if names:
        await res.es.indices.delete(index=",".join(names))
    for kind in KINDS:
        await res.es.options(ignore_status=404).indices.delete_index_template(
            name=f"{prefix}-{kind}"
        )


@pytest.fixture(scope="module")
async def source(
    stack: Stack, settings: Settings, embedder: Embedder, tmp_path_factory
) -> AsyncIterator[Source]:
    """A database, index prefix and snapshot repository of this module's own, on the dev
    stack: records written and indexed, then backed up with writes between the snapshot
    and the dump."""
    tag = uuid.uuid4().hex[:6]
    own_db = f"{make_url(settings.database_url).database}_bk"
    configured = settings.model_copy(
        update={
            "database_url": make_url(settings.database_url)
            .set(database=own_db)
            .render_as_string(hide_password=False),
            "es": settings.es.model_copy(update={"index_prefix": f"bk-{tag}"}),
            "redis": settings.redis.model_copy(update={"namespace": f"bk-{tag}"}),
            "backup": BackupSettings(repository=f"test_bk_{tag}"),
        }
    )
    snapshot_dir = stack.services["elasticsearch"].snapshot_dir  # type: ignore[union-attr]
    await admin_sql(settings.database_url, f'CREATE DATABASE "{own_db}"')
    try:
        await asyncio.to_thread(migrate.upgrade, configured)
        async with open_resources(configured, embedder=embedder) as res:
            await res.indices.ensure_all()
            try:
                folder = tmp_path_factory.mktemp("backup") / "b1"
                yield await _write_and_back_up(res, embedder, folder)
            finally:
                es = res.es.options(ignore_status=404)
                await es.snapshot.delete(repository=configured.backup.repository, snapshot="*")
                await es.snapshot.delete_repository(name=configured.backup.repository)
                shutil.rmtree(snapshot_dir / configured.backup.repository, ignore_errors=True)
                await _drop_indices(res)
    finally:
        await admin_sql(settings.database_url, f'DROP DATABASE IF EXISTS "{own_db}" WITH (FORCE)')


async def _write_and_back_up(res: Resources, embedder: Embedder, folder: Path) -> Source:
    tenant = await make_tenant(res)
    ids: dict[str, str] = {}
    async with AsyncTestClient(app=create_app(res.settings, embedder=embedder)) as api:
        api.headers.update(tenant.headers)

        async def document(name: str, title: str, text: str, **extra: Any) -> None:
            resp = await api.post("/v1/documents", json={"title": title, "text": text, **extra})
            assert resp.status_code == 201, resp.text
            ids[name] = resp.json()["id"]

        await document(
            "kelp",
            "Kelp forests",
            "Giant kelp forests shelter otters and urchins along cold coasts.",
            metadata={"year": 2019, "lang": "en"},
            tags=["ocean", "ecology"],
        )
        await document(
            "loom",
            "Jacquard loom",
            "Punched cards steered the Jacquard loom long before computers used them.",
            metadata={"year": 1804, "lang": "en"},
            tags=["history"],
        )
        await document("edited", "Draft title", "Sourdough starters need flour, water, patience.")
        await document("doomed", "Doomed note", "Ephemeral scribbles about a zeppelin timetable.")
        prompt = await api.post(
            "/v1/prompts", json={"name": f"p-{uuid.uuid4().hex[:6]}", "template": "Q: {q}"}
        )
        assert prompt.status_code == 201, prompt.text
        conversation = await api.post(
            "/v1/conversations",
            json={
                "title": "Lighthouse keepers",
                "messages": [{"role": "user", "content": "Who kept the lighthouse lamps lit?"}],
            },
        )
        assert conversation.status_code == 201, conversation.text
        run = await api.post(
            "/v1/runs",
            json={"provider": "openai", "model": "gpt-4o-mini", "input": "hi", "status": "ok"},
        )
        assert run.status_code == 201, run.text
        await drain(res)

        async def between_snapshot_and_dump() -> None:
            """In the dump, not in the snapshot; indexed here, so no outbox row is left."""
            await document("late", "Late arrival", "A quokka photobombed the snapshot window.")
            patched = await api.patch(
                f"/v1/documents/{ids['edited']}", json={"title": "Sourdough, revised"}
            )
            assert patched.status_code == 200, patched.text
            assert (await api.delete(f"/v1/documents/{ids['doomed']}")).status_code == 204
            await drain(res)

        await backup(res.settings, folder, after_snapshot=between_snapshot_and_dump)
    return Source(res.settings, res, tenant, ids, folder)


@pytest.fixture(scope="module")
def fresh() -> Iterator[Stack]:
    """A second, empty stack in a folder of its own, on free ports."""
    root = Path(tempfile.mkdtemp(prefix="myaiserv-restore-"))
    os.chmod(root, 0o755)  # noqa: S103 - the servers' user must traverse it
    # The stores a backup covers (no Zipkin: traces are not backed up).
    config = StackConfig(dir=root / "stack", services=("elasticsearch", "postgres", "redis"))
    config.elasticsearch.http_port = free_port()
    config.elasticsearch.transport_port = free_port()
    config.elasticsearch.cluster_name = "myaiserv-restore"
    config.postgres.port = free_port()
    config.redis.port = free_port()
    target = Stack(config)
    try:
        target.up()
        yield target
    finally:
        target.down()
        shutil.rmtree(root, ignore_errors=True)


def target_settings(source: Source, fresh: Stack) -> Settings:
    cfg = fresh.config
    return source.settings.model_copy(
        update={
            "database_url": cfg.postgres.url(),
            "redis_url": cfg.redis.url(1),
            "es_url": cfg.elasticsearch.urls(),
        }
    )


@pytest.fixture(scope="module")
async def restored(source: Source, fresh: Stack) -> RestoreReport:
    return await restore(target_settings(source, fresh), source.folder)


async def documents(res: Resources, tenant_id: uuid.UUID) -> dict[str, tuple]:
    async with res.sessionmaker() as session:
        rows = await session.scalars(select(Document).where(Document.tenant_id == tenant_id))
        return {
            str(d.id): (d.title, d.text, d.metadata_, sorted(d.tags), d.version, d.content_hash)
            for d in rows
        }


async def indexed_document_ids(res: Resources, tenant_id: uuid.UUID) -> set[str]:
    alias = res.indices.alias("documents")
    await res.es.indices.refresh(index=alias)
    resp = await res.es.search(
        index=alias,
        query={"term": {"tenant_id": str(tenant_id)}},
        size=0,
        aggs={"docs": {"terms": {"field": "document_id", "size": 100}}},
    )
    return {b["key"] for b in resp["aggregations"]["docs"]["buckets"]}


async def test_the_backup_folder_describes_itself(source: Source):
    manifest = load(source.folder)
    assert manifest.index_prefix == source.settings.es.index_prefix
    assert manifest.snapshot.files == ES_FILES
    assert (source.folder / ES_FILES / f"snap-{manifest.snapshot.uuid}.dat").is_file()
    assert {info.kind for info in manifest.snapshot.indices.values()} == set(KINDS)
    assert all(info.aliases for info in manifest.snapshot.indices.values())
    assert manifest.embedding == {"model": "all-MiniLM-L6-v2", "dims": 384}
    assert manifest.alembic_revision
    started = datetime.fromisoformat(manifest.snapshot_started_at)
    assert datetime.fromisoformat(manifest.catch_up_since) <= started - CATCH_UP_MARGIN
    # The dump's counts are the database's now (nothing was written after the dump).
    async with source.resources.sessionmaker() as session:
        now = {
            name: await session.scalar(select(func.count()).select_from(table(name)))
            for name in manifest.postgres.tables
        }
    assert now == manifest.postgres.tables
    assert now["documents"] >= 4 and now["tenants"] >= 1
    # The snapshot predates the writes made between it and the dump.
    documents_index = next(
        info for info in manifest.snapshot.indices.values() if info.kind == "documents"
    )
    assert documents_index.docs >= 4  # kelp, loom, edited, doomed (one chunk or more each)
    # Nothing was indexed while the snapshot ran: the counts before and after agree.
    assert all(i.docs_after == i.docs for i in manifest.snapshot.indices.values())


async def test_restore_into_a_fresh_stack(
    source: Source, fresh: Stack, restored: RestoreReport, embedder: Embedder
):
    assert restored.ok, (restored.tables, restored.indices)
    manifest = restored.manifest
    assert {c.name for c in restored.tables} == set(manifest.postgres.tables)
    assert [c.actual for c in restored.tables] == [c.expected for c in restored.tables]
    assert {c.name: c.actual for c in restored.indices} == {
        name: info.docs for name, info in manifest.snapshot.indices.items()
    }
    # Writes between the snapshot and the dump: the new and the edited documents are
    # queued for indexing (and maybe more, within the margin); the deleted one is queued
    # for deletion from the index.
    assert restored.queued_changed >= 2
    assert restored.queued_removed == 1

    target = target_settings(source, fresh)
    async with open_resources(target, embedder=embedder) as res:
        # PostgreSQL: the same records, field for field.
        assert await documents(res, source.tenant.id) == await documents(
            source.resources, source.tenant.id
        )
        # Elasticsearch: the snapshot, before any indexer ran.
        indexed = await indexed_document_ids(res, source.tenant.id)
        ids = source.ids
        assert indexed == {ids["kelp"], ids["loom"], ids["edited"], ids["doomed"]}

        async with AsyncTestClient(app=create_app(target, embedder=embedder)) as api:
            api.headers.update(source.tenant.headers)  # the restored key works

            async def search(query: str) -> list[tuple[str, str]]:
                resp = await api.post(
                    "/v1/search",
                    json={"query": query, "mode": "bm25", "kinds": ["documents"]},
                    headers={"Cache-Control": "no-cache"},
                )
                assert resp.status_code == 200, resp.text
                return [
                    (h["fields"]["document_id"], h["fields"]["title"]) for h in resp.json()["hits"]
                ]

            assert await search("kelp otters") == [(ids["kelp"], "Kelp forests")]
            assert (ids["loom"], "Jacquard loom") in await search("punched cards loom")
            conversations = await api.post(
                "/v1/search", json={"query": "lighthouse lamps", "kinds": ["conversations"]}
            )
            assert conversations.status_code == 200 and conversations.json()["hits"]

            # An indexer on the restored stack catches up with PostgreSQL.
            await drain(res)
            async with res.sessionmaker() as session:
                assert await session.scalar(select(func.count(OutboxEvent.id))) == 0
            assert await indexed_document_ids(res, source.tenant.id) == {
                ids["kelp"],
                ids["loom"],
                ids["edited"],
                ids["late"],
            }
            assert await search("quokka photobombed") == [(ids["late"], "Late arrival")]
            assert await search("sourdough") == [(ids["edited"], "Sourdough, revised")]
            assert await search("zeppelin timetable") == []


async def test_restore_refuses_to_replace_data_unless_told(
    source: Source, fresh: Stack, restored: RestoreReport, tmp_path: Path
):
    target = target_settings(source, fresh)
    with pytest.raises(BackupError, match="refusing to overwrite data"):
        await restore(target, source.folder)

    # The command line, as an operator runs it (a folder of its own: no .env there).
    cli = operator_cli(
        target, tmp_path, timeout=600, MYAISERV_BACKUP__REPOSITORY=target.backup.repository
    )

    refused = await asyncio.to_thread(cli, "restore", str(source.folder))
    assert refused.returncode == 1
    assert "refusing to overwrite data" in refused.stderr and "--yes" in refused.stderr

    replaced = await asyncio.to_thread(cli, "restore", str(source.folder), "--yes")
    assert replaced.returncode == 0, replaced.stderr
    assert "DIFFERS" not in replaced.stdout
    manifest = load(source.folder)
    for name, rows in manifest.postgres.tables.items():
        assert any(
            line.split()[:3] == [name, str(rows), str(rows)]
            for line in replaced.stdout.splitlines()
        ), (name, replaced.stdout)
    assert "queued for the indexers" in replaced.stdout

    incomplete = tmp_path / "incomplete"
    shutil.copytree(source.folder, incomplete)
    (incomplete / "postgres.dump").unlink()
    missing = await asyncio.to_thread(cli, "restore", str(incomplete), "--yes")
    assert missing.returncode == 1 and "incomplete" in missing.stderr
