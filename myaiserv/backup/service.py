"""Backups and restores of the whole system, as one folder.

Backup: snapshot our indices (those behind the ``{prefix}-{kind}`` aliases, aliases
included) into a shared-filesystem repository first, then dump PostgreSQL, so PostgreSQL
is never older than Elasticsearch. The dump and the row counts come from one exported
PostgreSQL snapshot, so the counts are the dump's. When this machine sees the repository
folder (the local stack; a container that mounts the shared folder), the repository is
copied into the backup folder, which is then enough to restore anywhere.

Restore: PostgreSQL from the dump, Elasticsearch from the snapshot, then Elasticsearch is
made consistent with PostgreSQL through the outbox: every entity changed since the
snapshot began (less a margin) is queued for re-indexing, and every entity the index
holds that PostgreSQL no longer has is queued for deletion. Running indexers do the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from uuid import UUID

import sqlalchemy.exc
from elasticsearch import AsyncElasticsearch
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from myaiserv.backup.errors import BackupError
from myaiserv.backup.manifest import (
    DUMP,
    ES_FILES,
    DumpInfo,
    IndexInfo,
    Manifest,
    SnapshotInfo,
    load,
    sha256_of,
)
from myaiserv.backup.pgtools import PgConnection, find_tool, run_tool, tool_major
from myaiserv.backup.repository import ENTITY_MODELS, BackupRepository
from myaiserv.backup.snapshots import ENTITY_FIELDS, SnapshotStore
from myaiserv.cache.client import create_redis_client
from myaiserv.config import Settings
from myaiserv.db.outbox import Change, OutboxRepository
from myaiserv.logging import get_logger
from myaiserv.search.cache import ALL_TENANTS, bump_generations
from myaiserv.search.client import create_es_client
from myaiserv.search.kinds import KINDS

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


def copy_repository(src: Path, dst: Path, *, owner: tuple[int, int] | None = None) -> None:
    """Copy a snapshot repository. Data blobs (under ``indices/``: written once, never
    changed) are hard-linked where the filesystem allows; the rest (``index-N``,
    ``index.latest``: small, and rewritten by later snapshots) is copied."""
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        target = dst / rel
        target.mkdir(parents=True, exist_ok=True)
        if owner:
            os.chown(target, *owner)
        for name in files:
            source, dest = Path(root) / name, target / name
            if rel.parts[:1] == ("indices",):
                try:
                    os.link(source, dest)
                    continue
                except OSError:
                    pass
            shutil.copy2(source, dest)
            if owner:
                os.chown(dest, *owner)


@dataclass
class Comparison:
    name: str
    expected: int  # the manifest's (at least)
    expected_max: int  # at most (documents written while the snapshot ran)
    actual: int | None

    @classmethod
    def exact(cls, name: str, expected: int, actual: int | None) -> Comparison:
        return cls(name, expected, expected, actual)

    @property
    def ok(self) -> bool:
        return self.actual is not None and self.expected <= self.actual <= self.expected_max

    def expected_text(self) -> str:
        if self.expected == self.expected_max:
            return str(self.expected)
        return f"{self.expected}..{self.expected_max}"


@dataclass
class BackupResult:
    folder: Path
    manifest: Manifest


@dataclass
class RestoreReport:
    manifest: Manifest
    tables: list[Comparison]
    indices: list[Comparison]
    queued_changed: int = 0
    queued_removed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.tables + self.indices)


def _app_version() -> str:
    try:
        return package_version("myaiserv")
    except PackageNotFoundError:
        from myaiserv import __version__

        return __version__


@contextlib.asynccontextmanager
async def _clients(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, AsyncElasticsearch]]:
    # No pool: a restore drops and recreates tables under any connection we would keep.
    engine = create_async_engine(
        settings.database_url,
        poolclass=NullPool,
        connect_args={
            "timeout": settings.db.connect_timeout_s,
            "server_settings": {"application_name": "myaiserv-backup"},
        },
    )
    es = create_es_client(settings)
    try:
        yield engine, es
    finally:
        await es.close()
        await engine.dispose()


@contextlib.asynccontextmanager
async def _pg_errors(settings: Settings, doing: str) -> AsyncIterator[None]:
    try:
        yield
    except (sqlalchemy.exc.DBAPIError, OSError) as exc:
        url = make_url(settings.database_url)
        where = f"{url.host}:{url.port or 5432}/{url.database}"
        raise BackupError(f"{doing}: PostgreSQL at {where}: {str(exc).splitlines()[0]}") from None


async def _tool(name: str) -> tuple[Path, int]:
    tool = await asyncio.to_thread(find_tool, name)
    return tool, await asyncio.to_thread(tool_major, tool)


# -- backup ----------------------------------------------------------------------------


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
    pg_dump, dump_major = await _tool("pg_dump")
    conn = PgConnection.from_url(settings.database_url)

    async with _clients(settings) as (engine, es):
        store = SnapshotStore(es, timeout_s=cfg.timeout_s)
        async with _pg_errors(settings, "reading the server version"), engine.connect() as db:
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
        async with _pg_errors(settings, "reading the clock"), engine.connect() as db:
            started_at, oldest_pending = await BackupRepository(db).clock()
        log.info("snapshot starting", repository=cfg.repository, snapshot=name, indices=indices)
        info = await store.create(cfg.repository, name, indices)
        log.info("snapshot taken", snapshot=name, uuid=info["uuid"])
        docs_after = await store.doc_counts(indices)
        if after_snapshot is not None:
            await after_snapshot()

        dump_path = folder / DUMP
        async with _pg_errors(settings, "dumping"), engine.connect() as connection:
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


# -- restore ---------------------------------------------------------------------------


@dataclass
class _Source:
    repository: str  # where the snapshot is restored from
    registered: str | None = None  # a repository we registered for the restore
    copied: Path | None = None  # repository files we copied for it


async def _source(
    store: SnapshotStore, settings: Settings, manifest: Manifest, folder: Path
) -> _Source:
    """The repository holding the backup's snapshot: the configured one when it has it
    (the same cluster, or a shared folder), else the folder's copy, put where the nodes
    read snapshots and registered read-only for the restore."""
    snap, configured = manifest.snapshot, settings.backup.repository
    if await store.location_of(configured) and await store.snapshot_info(configured, snap.name):
        return _Source(configured)
    if snap.files is None:
        raise BackupError(
            f"the backup holds no copy of the Elasticsearch repository, and repository "
            f"{configured} here has no snapshot {snap.name}: register the repository that "
            f"holds it (repository {snap.repository} where the backup was taken) as "
            f"{configured}, then run restore again"
        )
    root = await store.location_root(settings.backup.location)
    location = f"{root}/{configured}-restore-{snap.name}"
    local = Path(location)
    source = _Source(f"{configured}_restore")
    if not await asyncio.to_thread((local / f"snap-{snap.uuid}.dat").is_file):
        source.copied = local
        await asyncio.to_thread(_put_repository, folder / snap.files, Path(root), local)
    await store.register(source.repository, location, readonly=True)
    source.registered = source.repository
    if await store.snapshot_info(source.repository, snap.name) is None:
        await _release(store, source)
        raise BackupError(
            f"Elasticsearch does not find snapshot {snap.name} in {location}: is {root} "
            "the folder every node reads snapshots from (path.repo)?"
        )
    return source


def _put_repository(files: Path, root: Path, target: Path) -> None:
    """Copy the backup's repository into the nodes' snapshot folder, owned like it."""
    if not (root.is_dir() and os.access(root, os.W_OK)):
        raise BackupError(
            f"the Elasticsearch nodes' snapshot folder {root} is not writable from here: "
            f"copy {files} to {target} in that shared folder, then run restore again"
        )
    stat = root.stat()
    owner = (stat.st_uid, stat.st_gid) if os.geteuid() == 0 and stat.st_uid != 0 else None
    if target.exists():  # a copy an interrupted restore left
        shutil.rmtree(target)
    copy_repository(files, target, owner=owner)


async def _release(store: SnapshotStore, source: _Source) -> None:
    if source.registered:
        with contextlib.suppress(Exception):  # cleanup: the restore's outcome matters more
            await store.unregister(source.registered)
    if source.copied:
        await asyncio.to_thread(shutil.rmtree, source.copied, True)


async def restore(settings: Settings, folder: Path, *, yes: bool = False) -> RestoreReport:
    """Replace the database and our indices with the backup in ``folder``; refuses to
    replace data unless ``yes``."""
    manifest = await asyncio.to_thread(load, folder)
    prefix, cfg = settings.es.index_prefix, settings.backup
    if manifest.index_prefix != prefix:
        raise BackupError(
            f"the backup's indices have the prefix {manifest.index_prefix!r}, these settings "
            f"{prefix!r}: set MYAISERV_ES__INDEX_PREFIX={manifest.index_prefix} to restore it"
        )
    pg_restore, restore_major = await _tool("pg_restore")
    if restore_major < manifest.postgres.pg_dump_major:
        raise BackupError(
            f"{pg_restore} is version {restore_major}; the dump was made by pg_dump "
            f"{manifest.postgres.pg_dump_major}: install postgresql-client-"
            f"{manifest.postgres.pg_dump_major} or newer, or set MYAISERV_PG_BINDIR"
        )
    conn = PgConnection.from_url(settings.database_url)
    notes: list[str] = []

    async with _clients(settings) as (engine, es):
        store = SnapshotStore(es, timeout_s=cfg.timeout_s)
        async with _pg_errors(settings, "looking at the database"), engine.connect() as db:
            repo = BackupRepository(db)
            server = await repo.server_version()
            tables = await repo.tables()
            # A migrated, empty database (its revision only) holds no data.
            filled = await repo.tables_with_rows(t for t in tables if t != "alembic_version")
        existing = await store.prefixed_indices(prefix)
        indexed = await store.documents_in(existing)
        if (filled or indexed) and not yes:
            held = []
            if filled:
                held.append(f"database {conn.database} has rows in {', '.join(filled)}")
            if indexed:
                held.append(f"Elasticsearch holds {indexed} documents in {prefix}-* indices")
            raise BackupError(
                "refusing to overwrite data: " + "; ".join(held) + ". Pass --yes to replace "
                "them with the backup"
            )
        if server // 10000 < manifest.postgres.server_version // 10000:
            notes.append(
                f"the backup comes from PostgreSQL {manifest.postgres.server_version // 10000}, "
                f"this server is {server // 10000}"
            )

        source = await _source(store, settings, manifest, folder)
        try:
            args: list[str | Path] = [
                pg_restore,
                "--no-password",
                "--no-owner",
                "--no-acl",
                "--single-transaction",
                "--exit-on-error",
            ]
            if tables:
                args += ["--clean", "--if-exists"]
            args += [*conn.args(), folder / manifest.postgres.file]
            log.info("restoring the database", database=conn.database)
            try:
                await asyncio.to_thread(
                    run_tool,
                    args,
                    conn.env(connect_timeout_s=settings.db.connect_timeout_s),
                    cfg.timeout_s,
                )
            except BackupError as exc:
                extra = sorted(set(tables) - set(manifest.postgres.tables))
                if not extra:
                    raise
                raise BackupError(
                    f"{exc}\nThe database has tables the backup lacks ({', '.join(extra)}), "
                    "e.g. from a newer schema: restore into an empty database (drop and create "
                    "it), then run `myaiserv db upgrade`"
                ) from None
            async with _pg_errors(settings, "counting rows"), engine.begin() as db:
                repo = BackupRepository(db)
                await repo.no_statement_timeout()
                present = set(await repo.tables())
                counted = await repo.row_counts(
                    [t for t in manifest.postgres.tables if t in present]
                )
                revision = await repo.alembic_revision()

            indices = sorted(manifest.snapshot.indices)
            await store.delete_indices(await store.prefixed_indices(prefix))
            log.info("restoring the snapshot", snapshot=manifest.snapshot.name, indices=indices)
            await store.restore(
                source.repository, manifest.snapshot.name, indices, replicas=settings.es.replicas
            )
            docs = await store.doc_counts(indices)
        finally:
            await _release(store, source)

        since = datetime.fromisoformat(manifest.catch_up_since)
        changed, removed, builds = await _reconcile(engine, store, settings, since)
        if builds:
            notes.append(f"{builds} reindex(es) in progress at backup time dropped; run it again")
        redis = create_redis_client(settings)
        try:
            await bump_generations(redis, prefix, [(ALL_TENANTS, kind) for kind in KINDS])
        except (RedisError, OSError) as exc:
            notes.append(f"could not invalidate cached search pages in Redis ({exc})")
        finally:
            await redis.aclose()
        notes += _compatibility(settings, manifest, revision)

    report = RestoreReport(
        manifest=manifest,
        tables=[
            Comparison.exact(t, n, counted.get(t))
            for t, n in sorted(manifest.postgres.tables.items())
        ],
        indices=[
            Comparison(i, *info.docs_range(), docs.get(i))
            for i, info in sorted(manifest.snapshot.indices.items())
        ],
        queued_changed=changed,
        queued_removed=removed,
        notes=notes,
    )
    log.info("restore done", ok=report.ok, changed=changed, removed=removed)
    return report


async def _reconcile(
    engine: AsyncEngine, store: SnapshotStore, settings: Settings, since: datetime
) -> tuple[int, int, int]:
    """Queue outbox rows so the indexers bring Elasticsearch in line with PostgreSQL:
    (entities changed since ``since``, entities gone from PostgreSQL, builds dropped)."""
    prefix = settings.es.index_prefix
    changed = removed = 0
    async with (
        _pg_errors(settings, "queueing re-indexing"),
        AsyncSession(engine) as session,
        session.begin(),
    ):
        repo, outbox = BackupRepository(session), OutboxRepository(session)
        await repo.no_statement_timeout()
        builds = await repo.clear_index_builds()
        for kind in ENTITY_MODELS:
            after: UUID | None = None
            while rows := await repo.changed_since(kind, since, after=after):
                await outbox.add(
                    Change.upsert(tenant, kind, entity, version, reason="restore")
                    for entity, tenant, version in rows
                )
                changed += len(rows)
                after = rows[-1][0]
        for kind, (index_kind, id_field, doc_filter) in ENTITY_FIELDS.items():
            alias = f"{prefix}-{index_kind}"
            async for page in store.entity_versions(alias, id_field, doc_filter):
                found = {}
                for entity, tenant, version in page:
                    with contextlib.suppress(ValueError):
                        found[UUID(entity)] = (UUID(tenant), version)
                gone = set(found) - await repo.existing_ids(kind, found)
                await outbox.add(
                    Change.delete(found[e][0], kind, e, found[e][1], reason="restore")
                    for e in sorted(gone)
                )
                removed += len(gone)
    return changed, removed, builds


def _compatibility(settings: Settings, manifest: Manifest, revision: str | None) -> list[str]:
    """What this installation must do before serving the restored data."""
    from myaiserv.db.migrate import alembic_config
    from myaiserv.embeddings.model import Embedder, ModelInfo
    from myaiserv.resources import index_options
    from myaiserv.search.indices import IndexManager

    notes = []
    try:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
    except Exception:  # noqa: BLE001 - the notes are advice; a broken migrations folder shows elsewhere
        head = None
    if head and revision != head:
        notes.append(
            f"the restored schema is at revision {revision}, this code's is {head}: "
            "run `myaiserv db upgrade`"
        )
    embedder = Embedder(settings.embedding.model)
    model_id = embedder.model_id
    embedder.close()
    dims = int(manifest.embedding.get("dims") or 0)
    model = ModelInfo(model_id, dims, 0)
    # Only mismatch() is used: it compares an index's _meta with these settings.
    manager = IndexManager(None, settings.es.index_prefix, model, index_options(settings))  # type: ignore[arg-type]
    for index, info in sorted(manifest.snapshot.indices.items()):
        reason = manager.mismatch(info.kind, index, info.meta)
        if reason:
            notes.append(reason)
    return notes
