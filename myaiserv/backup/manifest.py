"""The backup folder and its manifest: what a backup holds, checked before a restore.

::

    <folder>/
      manifest.json     what follows, row and document counts, the consistency point
      postgres.dump     pg_dump -Fc of the database
      elasticsearch/    a copy of the snapshot repository (when the machine that ran the
                        backup could see it), enough to restore on another cluster

The manifest is written last: a folder without one is a backup that did not finish.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from myaiserv.backup.errors import BackupError
from myaiserv.kit.digest import sha256_of

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "postgres.dump"
ES_FILES = "elasticsearch"


@dataclass
class IndexInfo:
    kind: str
    aliases: list[str]
    docs: int  # counted as the snapshot started
    meta: dict[str, Any]  # the index's mapping _meta: spec, embedding model, analysis
    # Counted again once it was taken: indexers writing meanwhile make the snapshot hold
    # a count between the two (equal when nothing was written).
    docs_after: int | None = None

    def docs_range(self) -> tuple[int, int]:
        after = self.docs if self.docs_after is None else self.docs_after
        return min(self.docs, after), max(self.docs, after)


@dataclass
class SnapshotInfo:
    repository: str
    name: str
    uuid: str
    es_version: str
    start_time: str  # Elasticsearch's clock
    indices: dict[str, IndexInfo]
    files: str | None  # the repository's copy in the folder (ES_FILES), or None


@dataclass
class DumpInfo:
    file: str
    bytes: int
    sha256: str
    database: str
    server_version: int  # server_version_num, e.g. 150018
    pg_dump_major: int
    tables: dict[str, int]  # rows per table, counted in the dump's own snapshot


@dataclass
class Manifest:
    created_at: str
    app_version: str
    alembic_revision: str | None
    index_prefix: str
    embedding: dict[str, Any]  # model and dims, as the indices record them
    # PostgreSQL's clock just before the snapshot started, and the time from which a
    # restore re-indexes changed entities (earlier still, see service.catch_up_since).
    snapshot_started_at: str
    catch_up_since: str
    snapshot: SnapshotInfo
    postgres: DumpInfo
    format: int = FORMAT
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        snapshot = dict(data["snapshot"])
        snapshot["indices"] = {
            name: IndexInfo(**info) for name, info in snapshot["indices"].items()
        }
        return cls(
            **{
                **data,
                "snapshot": SnapshotInfo(**snapshot),
                "postgres": DumpInfo(**data["postgres"]),
            }
        )

    def write(self, folder: Path) -> Path:
        """Atomically: a reader sees no manifest or a whole one."""
        path = folder / MANIFEST
        partial = folder / f".{MANIFEST}.partial"
        partial.write_text(self.to_json())
        os.replace(partial, path)
        return path


def load(folder: Path, *, verify_checksum: bool = True) -> Manifest:
    """The folder's manifest, once every file it names is there and whole."""
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(
            f"{folder} has no {MANIFEST}: it is not a backup, or a backup that did not finish"
        )
    try:
        data = json.loads(path.read_text())
        manifest = Manifest.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is not a valid manifest ({exc})") from None
    if manifest.format != FORMAT:
        raise BackupError(
            f"{path} has format {manifest.format}; this version reads format {FORMAT}"
        )
    dump = folder / manifest.postgres.file
    if not dump.is_file():
        raise BackupError(f"the backup in {folder} is incomplete: {dump.name} is missing")
    if dump.stat().st_size != manifest.postgres.bytes:
        raise BackupError(
            f"the backup in {folder} is incomplete: {dump.name} has {dump.stat().st_size} "
            f"bytes, the manifest says {manifest.postgres.bytes}"
        )
    if verify_checksum and sha256_of(dump) != manifest.postgres.sha256:
        raise BackupError(f"{dump} is damaged: its SHA-256 differs from the manifest's")
    snapshot = manifest.snapshot
    if snapshot.files is not None:
        repo = folder / snapshot.files
        missing = [
            name
            for name in ("index.latest", f"snap-{snapshot.uuid}.dat", "indices")
            if not (repo / name).exists()
        ]
        if missing:
            raise BackupError(
                f"the backup in {folder} is incomplete: {snapshot.files}/ lacks "
                + ", ".join(missing)
            )
    return manifest
