"""Restores of a backup folder made by ``myaiserv.backup.take``.

PostgreSQL from the dump, Elasticsearch from the snapshot, then Elasticsearch is made
consistent with PostgreSQL through the outbox: every entity changed since the snapshot
began (less a margin) is queued for re-indexing, and every entity the index holds that
PostgreSQL no longer has is queued for deletion. Running indexers do the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from myaiserv.backup.clients import open_clients, pg_errors
from myaiserv.backup.errors import BackupError
from myaiserv.backup.files import copy_repository
from myaiserv.backup.manifest import Manifest, load
from myaiserv.backup.pgtools import PgConnection, locate_tool, run_tool
from myaiserv.backup.repository import BackupRepository
from myaiserv.backup.snapshots import ENTITY_FIELDS, SnapshotStore
from myaiserv.config import Settings
from myaiserv.db.generations import ALL_TENANTS, bump
from myaiserv.db.index_state import mark_pending
from myaiserv.db.outbox import Change, OutboxRepository
from myaiserv.logging import get_logger
from myaiserv.search.kinds import ENTITY_KINDS, KINDS, as_kind

log = get_logger("myaiserv.backup")


@dataclass
class Comparison:
    """A restored count (rows of a table, documents of an index) beside the backup's."""

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
    pg_restore, restore_major = await locate_tool("pg_restore")
    if restore_major < manifest.postgres.pg_dump_major:
        raise BackupError(
            f"{pg_restore} is version {restore_major}; the dump was made by pg_dump "
            f"{manifest.postgres.pg_dump_major}: install postgresql-client-"
            f"{manifest.postgres.pg_dump_major} or newer, or set MYAISERV_PG_BINDIR"
        )
    conn = PgConnection.from_url(settings.database_url)
    notes: list[str] = []

    async with open_clients(settings) as (engine, es):
        store = SnapshotStore(es, timeout_s=cfg.timeout_s)
        async with pg_errors(settings, "looking at the database"), engine.connect() as db:
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
            async with pg_errors(settings, "counting rows"), engine.begin() as db:
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
        pg_errors(settings, "queueing re-indexing"),
        AsyncSession(engine) as session,
        session.begin(),
    ):
        repo, outbox = BackupRepository(session), OutboxRepository(session)
        await repo.no_statement_timeout()
        builds = await repo.clear_index_builds()
        for kind in ENTITY_KINDS:
            after: UUID | None = None
            while rows := await repo.changed_since(kind, since, after=after):
                await outbox.add(
                    Change.upsert(tenant, kind, entity, version, reason="restore")
                    for entity, tenant, version in rows
                )
                await mark_pending(session, kind, (entity for entity, _, _ in rows))
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
        # Every cached page predates the restored index: none may be served again.
        await bump(session, [(ALL_TENANTS, kind) for kind in KINDS])
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
        kind = as_kind(info.kind)
        reason = (
            f"{index} holds an unknown kind {info.kind!r}"
            if kind is None
            else manager.mismatch(kind, index, info.meta)
        )
        if reason:
            notes.append(reason)
    return notes
