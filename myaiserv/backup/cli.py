"""`myaiserv backup` and `myaiserv restore`."""

from __future__ import annotations

from pathlib import Path

import click

from myaiserv.backup.errors import BackupError
from myaiserv.kit.cli import run


@click.command("backup")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write (created; it must not exist or be empty) [backups/<snapshot name>].",
)
def backup_command(dest: Path | None) -> None:
    """Back up PostgreSQL and the Elasticsearch indices into one folder.

    \b
    The folder holds:
      manifest.json   versions, the Alembic revision, the snapshot and its indices and
                      aliases, the embedding model, rows per table, documents per index
      postgres.dump   pg_dump -Fc (needs pg_dump of the server's major version or newer)
      elasticsearch/  a copy of the snapshot repository, when this machine sees it

    Elasticsearch is snapshotted first, PostgreSQL dumped second, so the database is never
    older than the indices; `myaiserv restore` re-indexes what changed in between.

    Snapshots go to the shared-filesystem repository MYAISERV_BACKUP__REPOSITORY
    (myaiserv_backups) under MYAISERV_BACKUP__LOCATION, by default the nodes' path.repo:
    the local stack sets it. In production every Elasticsearch node must mount one shared
    folder listed in its path.repo (docker-compose.yml: the `snapshots` volume at
    /snapshots); run the backup where that folder is mounted too, or the snapshot stays
    in the repository only and the backup folder is not enough on its own.
    """
    from myaiserv.backup.take import backup

    result = run(lambda settings: backup(settings, dest), reported=(BackupError,))
    manifest = result.manifest
    click.echo(f"backup: {result.folder}")
    click.echo(
        f"  snapshot {manifest.snapshot.name} in repository {manifest.snapshot.repository}"
        + (" (copied into the folder)" if manifest.snapshot.files else "")
    )
    click.echo(f"  postgres.dump: {manifest.postgres.bytes} bytes, {manifest.postgres.database}")
    for table, rows in sorted(manifest.postgres.tables.items()):
        click.echo(f"  {table:<32} {rows:>10} rows")
    for index, info in sorted(manifest.snapshot.indices.items()):
        click.echo(f"  {index:<48} {info.docs:>10} docs")
    for note in manifest.notes:
        click.echo(f"note: {note}", err=True)


@click.command("restore")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace a database or indices that hold data.")
def restore_command(folder: Path, yes: bool) -> None:
    """Restore a backup folder made by `myaiserv backup`.

    \b
    1. pg_restore the dump into DATABASE_URL's database (--clean when it has tables);
    2. restore the Elasticsearch snapshot with its aliases, replacing the indices of
       MYAISERV_ES__INDEX_PREFIX (the folder's repository copy is put into the nodes'
       snapshot folder when the cluster does not have the snapshot already);
    3. queue outbox rows for everything changed since the snapshot began, and deletes
       for what the indices hold that the database no longer has: run an indexer
       (`myaiserv indexer run`) to apply them.

    Refuses to replace data unless --yes. Prints rows and documents beside the backup's.
    """
    from myaiserv.backup.restore import restore

    report = run(lambda settings: restore(settings, folder, yes=yes), reported=(BackupError,))
    click.echo(f"restored {folder} (snapshot {report.manifest.snapshot.name})")
    click.echo(f"  {'postgres table':<48} {'backup':>10} {'restored':>10}")
    for c in report.tables:
        click.echo(f"  {c.name:<48} {c.expected_text():>10} {_n(c.actual):>10}  {_mark(c.ok)}")
    click.echo(f"  {'elasticsearch index':<48} {'backup':>10} {'restored':>10}")
    for c in report.indices:
        click.echo(f"  {c.name:<48} {c.expected_text():>10} {_n(c.actual):>10}  {_mark(c.ok)}")
    click.echo(
        f"queued for the indexers: {report.queued_changed} entities changed since "
        f"{report.manifest.catch_up_since}, {report.queued_removed} gone from PostgreSQL"
    )
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if not report.ok:
        raise click.ClickException("restored counts differ from the backup's (see above)")


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _mark(ok: bool) -> str:
    return "ok" if ok else "DIFFERS"
