"""Backups of the whole system, as one folder.

Snapshot our indices (those behind the ``{prefix}-{kind}`` aliases, aliases included) into
a shared-filesystem repository first, then dump PostgreSQL, so PostgreSQL is never older
than Elasticsearch. The dump and the row counts come from one exported PostgreSQL
snapshot, so the counts are the dump's. When this machine sees the repository folder (the
local stack; a container that mounts the shared folder), the repository is copied into the
backup folder, which is then enough to restore anywhere (``myaiserv.backup.restore``).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

from myaiserv.backup.clients import open_clients, pg_errors
from myaiserv.backup.errors import BackupError
from myaiserv.backup.files import copy_repository
from myaiserv.backup.manifest import (
    DUMP,
    ES_FILES,
    DumpInfo,
    IndexInfo,
    Manifest,
    SnapshotInfo,
)
from myaiserv.backup.pgtools import PgConnection, locate_tool, run_tool
from myaiserv.backup.repository import BackupRepository
from myaiserv.backup.snapshots import SnapshotStore
from myaiserv.config import Settings
from myaiserv.kit.digest import sha256_of
from myaiserv.logging import get_logger

log = get_logger("myaiserv.backup")

# A change's rows carry its transaction's start time (now()); a transaction still open
# when the snapshot began commits later with an earlier time. Re-indexing a few minutes
# more than needed costs little (writes are idempotent); missing one would not.
CATCH_UP_MARGIN = timedelta(minutes=5)


def snapshot_name(prefix: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def catch_up_since(started_at: datetime, oldest_pending: datetime | None) -> datetime:
    """From when a restore must re-index: entities changed after the snapshot began are
    not in it, nor are those whose outbox rows were still pending then (an indexer may
    drain those rows before the dump is taken)."""
    since = min(started_at, oldest_pending) if oldest_pending else started_at
    return since - CATCH_UP_MARGIN


@dataclass
class BackupResult:
    folder: Path
    manifest: Manifest


def _app_version() -> str:
    try:
        return package_version("myaiserv")
    except PackageNotFoundError:
        from myaiserv import __version__

        return __version__


async def backup(
    settings: Settings,
    dest: Path | None = None,
    *,
    after_snapshot: Callable[[], Awaitable[None]] | None = None,
) -> BackupResult:
    """Snapshot Elasticsearch, then dump PostgreSQL, into ``dest`` (created; it must not
    exist or be empty). ``after_snapshot`` runs between the two (tests write there)."""
    name = snapshot_name(settings.es.index_prefix)
    folder = dest or Path("backups") / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} exists and is not an empty folder; choose another --dest")
    existed = folder.exists()
    try:
        return await _backup(settings, name, folder, after_snapshot)
    except BaseException:
        _discard(folder, keep_folder=existed)
        raise


def _discard(folder: Path, *, keep_folder: bool) -> None:
    """A backup that failed leaves nothing that could pass for one."""
    if not keep_folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for item in folder.iterdir():
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


async def _backup(
    settings: Settings,
    name: str,
    folder: Path,
    after_snapshot: Callable[[], Awaitable[None]] | None,
) -> BackupResult:
    prefix = settings.es.index_prefix
    cfg = settings.backup
    pg_dump, dump_major = await locate_tool("pg_dump")
    conn = PgConnection.from_url(settings.database_url)

    async with open_clients(settings) as (engine, es):
        store = SnapshotStore(es, timeout_s=cfg.timeout_s)
        async with pg_errors(settings, "reading the server version"), engine.connect() as db:
            server = await BackupRepository(db).server_version()
        if dump_major < server // 10000:
            raise BackupError(
                f"{pg_dump} is version {dump_major} but the server is {server // 10000}: "
                f"pg_dump cannot dump a newer server; install postgresql-client-"
                f"{server // 10000} or set MYAISERV_PG_BINDIR"
            )
        root = await store.location_root(cfg.location)
        location = f"{root}/{cfg.repository}"
        await store.register(cfg.repository, location)
        aliased = await store.aliased_indices(prefix)
        if not aliased:
            raise BackupError(
                f"no index behind the aliases {prefix}-<kind>: nothing to snapshot (run "
                "`myaiserv index init`, or check MYAISERV_ES__INDEX_PREFIX)"
            )
        indices = sorted(aliased)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        docs = await store.doc_counts(indices)
        metas = await store.metas(indices)
        async with pg_errors(settings, "reading the clock"), engine.connect() as db:
            started_at, oldest_pending = await BackupRepository(db).clock()
        log.info("snapshot starting", repository=cfg.repository, snapshot=name, indices=indices)
        info = await store.create(cfg.repository, name, indices)
        log.info("snapshot taken", snapshot=name, uuid=info["uuid"])
        docs_after = await store.doc_counts(indices)
        if after_snapshot is not None:
            await after_snapshot()

        dump_path = folder / DUMP
        async with pg_errors(settings, "dumping"), engine.connect() as connection:
            db = await connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with db.begin():
                repo = BackupRepository(db)
                await repo.no_statement_timeout()
                exported = await repo.export_snapshot()
                tables = await repo.tables()
                rows = await repo.row_counts(tables)
                revision = await repo.alembic_revision()
                # The exported snapshot lives as long as this transaction: dump inside it.
                await asyncio.to_thread(
                    run_tool,
                    [
                        pg_dump,
                        "--format=custom",
                        "--no-password",
                        f"--snapshot={exported}",
                        f"--file={dump_path}",
                        *conn.args(),
                    ],
                    conn.env(connect_timeout_s=settings.db.connect_timeout_s),
                    cfg.timeout_s,
                )
        log.info("database dumped", file=str(dump_path), tables=len(tables))

        notes: list[str] = []
        files: str | None = None
        local = Path(location)
        if (local / f"snap-{info['uuid']}.dat").is_file():
            await asyncio.to_thread(copy_repository, local, folder / ES_FILES)
            files = ES_FILES
        else:
            notes.append(
                f"the snapshot repository {location} is not visible on this machine, so the "
                f"folder holds no copy of it: the snapshot stays in repository "
                f"{cfg.repository}, which a restore needs (same cluster, or the same shared "
                "folder registered under that name)"
            )
        embedding = next(
            (
                {"model": m.get("model"), "dims": m.get("dims")}
                for m in metas.values()
                if m.get("model")
            ),
            {},
        )
        manifest = Manifest(
            created_at=datetime.now(UTC).isoformat(),
            app_version=_app_version(),
            alembic_revision=revision,
            index_prefix=prefix,
            embedding=embedding,
            snapshot_started_at=started_at.isoformat(),
            catch_up_since=catch_up_since(started_at, oldest_pending).isoformat(),
            snapshot=SnapshotInfo(
                repository=cfg.repository,
                name=name,
                uuid=info["uuid"],
                es_version=await store.version(),
                start_time=info.get("start_time", ""),
                indices={
                    index: IndexInfo(
                        kind=str(metas[index].get("kind") or aliased[index][0][len(prefix) + 1 :]),
                        aliases=sorted(aliased[index]),
                        docs=docs[index],
                        docs_after=docs_after[index],
                        meta=metas[index],
                    )
                    for index in indices
                },
                files=files,
            ),
            postgres=DumpInfo(
                file=DUMP,
                bytes=dump_path.stat().st_size,
                sha256=await asyncio.to_thread(sha256_of, dump_path),
                database=conn.database,
                server_version=server,
                pg_dump_major=dump_major,
                tables=rows,
            ),
            notes=notes,
        )
        manifest.write(folder)
    log.info("backup written", folder=str(folder))
    return BackupResult(folder, manifest)
