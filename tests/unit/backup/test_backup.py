"""Backups without servers: the manifest and the checks of a backup folder, the query that
lists indexed entities, the client tools' connection (no password on the command line),
the catch-up point, the repository copy, and the commands' early errors."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from myaiserv.backup.errors import BackupError
from myaiserv.backup.files import copy_repository
from myaiserv.backup.manifest import (
    DUMP,
    ES_FILES,
    MANIFEST,
    DumpInfo,
    IndexInfo,
    Manifest,
    SnapshotInfo,
    load,
)
from myaiserv.backup.pgtools import PgConnection, find_tool, tool_major
from myaiserv.backup.restore import Comparison
from myaiserv.backup.snapshots import ENTITY_FIELDS, entity_versions_body
from myaiserv.backup.take import CATCH_UP_MARGIN, catch_up_since
from myaiserv.cli import main
from myaiserv.kit.digest import sha256_of
from myaiserv.search.kinds import ENTITY_KINDS


def make_backup(folder: Path, *, files: bool = True) -> Manifest:
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / DUMP
    dump.write_bytes(b"PGDMP fake dump")
    uuid = "aWX268DgTgSmJc4JvpXfdQ"
    if files:
        repo = folder / ES_FILES
        (repo / "indices" / "abc" / "0").mkdir(parents=True)
        (repo / "index.latest").write_bytes(b"\0" * 8)
        (repo / f"snap-{uuid}.dat").write_bytes(b"x")
    manifest = Manifest(
        created_at="2026-11-23T06:00:00+00:00",
        app_version="0.1.0",
        alembic_revision="0002",
        index_prefix="myaiserv",
        embedding={"model": "all-MiniLM-L6-v2", "dims": 384},
        snapshot_started_at="2026-11-23T06:00:00+00:00",
        catch_up_since="2026-11-23T05:55:00+00:00",
        snapshot=SnapshotInfo(
            repository="myaiserv_backups",
            name="myaiserv-20261123-060000-abcd",
            uuid=uuid,
            es_version="9.2.4",
            start_time="2026-11-23T06:00:00.100Z",
            indices={
                "myaiserv-documents-v2-x": IndexInfo(
                    kind="documents", aliases=["myaiserv-documents"], docs=3, meta={"kind": "d"}
                )
            },
            files=ES_FILES if files else None,
        ),
        postgres=DumpInfo(
            file=DUMP,
            bytes=dump.stat().st_size,
            sha256=sha256_of(dump),
            database="myaiserv",
            server_version=150018,
            pg_dump_major=15,
            tables={"documents": 3, "tenants": 1},
        ),
    )
    manifest.write(folder)
    return manifest


def test_manifest_round_trips(tmp_path: Path):
    written = make_backup(tmp_path / "b")
    assert load(tmp_path / "b") == written
    assert not list((tmp_path / "b").glob(".*partial"))


def test_a_folder_without_its_repository_copy_is_still_a_backup(tmp_path: Path):
    written = make_backup(tmp_path / "b", files=False)
    assert written.snapshot.files is None
    assert load(tmp_path / "b") == written


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / MANIFEST).unlink(), "has no manifest.json"),
        (lambda f: (f / MANIFEST).write_text("{"), "not a valid manifest"),
        (lambda f: (f / DUMP).unlink(), "incomplete: postgres.dump is missing"),
        (lambda f: (f / DUMP).write_bytes(b"short"), "incomplete: postgres.dump has 5 bytes"),
        (lambda f: (f / DUMP).write_bytes(b"PGDMP fake dumP"), "damaged"),
        (lambda f: (f / ES_FILES / "index.latest").unlink(), "elasticsearch/ lacks index.latest"),
    ],
)
def test_damaged_folders_are_refused_with_the_reason(tmp_path: Path, damage, message):
    folder = tmp_path / "b"
    make_backup(folder)
    damage(folder)
    with pytest.raises(BackupError, match=message):
        load(folder)


def test_not_a_folder(tmp_path: Path):
    with pytest.raises(BackupError, match="is not a folder"):
        load(tmp_path / "nowhere")


def test_entity_versions_body_pages_by_entity_and_tenant():
    body = entity_versions_body("message_id", {"term": {"doc_type": "message"}}, None, 500)
    assert body == {
        "size": 0,
        "query": {"bool": {"filter": [{"term": {"doc_type": "message"}}]}},
        "aggs": {
            "entities": {
                "composite": {
                    "size": 500,
                    "sources": [
                        {"id": {"terms": {"field": "message_id"}}},
                        {"tenant": {"terms": {"field": "tenant_id"}}},
                    ],
                },
                "aggs": {"version": {"max": {"field": "version"}}},
            }
        },
    }
    after = {"id": "a", "tenant": "t"}
    paged = entity_versions_body("document_id", None, after, 10)
    assert paged["query"] == {"match_all": {}}
    assert paged["aggs"]["entities"]["composite"]["after"] == after


def test_every_outbox_kind_is_checked_against_the_index():
    assert set(ENTITY_FIELDS) == set(ENTITY_KINDS)


def test_client_tools_never_see_the_password_on_their_command_line():
    conn = PgConnection.from_url(
        "postgresql+asyncpg://app:s3cr%40t@db.internal:6543/prod?ssl=require"
    )
    assert conn.args() == ["-h", "db.internal", "-p", "6543", "-U", "app", "-d", "prod"]
    assert "s3cr@t" not in " ".join(conn.args())
    env = conn.env({"PATH": "/bin", "PGPASSWORD": "stale"})
    assert env["PGPASSWORD"] == "s3cr@t"
    assert env["PGSSLMODE"] == "require"
    assert env["PATH"] == "/bin"
    plain = PgConnection.from_url("postgresql+asyncpg://app@localhost/db").env({})
    assert "PGPASSWORD" not in plain and "PGSSLMODE" not in plain


def test_pg_dump_is_found_and_its_major_version_read():
    tool = find_tool("pg_dump")
    assert tool.name == "pg_dump"
    assert tool_major(tool) >= 10


def test_catch_up_starts_before_the_snapshot_and_before_pending_changes():
    started = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert catch_up_since(started, None) == started - CATCH_UP_MARGIN
    pending = started - timedelta(hours=1)
    assert catch_up_since(started, pending) == pending - CATCH_UP_MARGIN
    assert catch_up_since(started, started + timedelta(seconds=1)) == started - CATCH_UP_MARGIN


def test_repository_copy_links_data_blobs_and_copies_metadata(tmp_path: Path):
    src = tmp_path / "repo"
    (src / "indices" / "abc" / "0").mkdir(parents=True)
    (src / "indices" / "abc" / "0" / "__blob").write_bytes(b"segment")
    (src / "index.latest").write_bytes(b"\0" * 8)
    (src / "index-0").write_text("{}")
    copy_repository(src, tmp_path / "copy")
    blob = tmp_path / "copy" / "indices" / "abc" / "0" / "__blob"
    assert blob.read_bytes() == b"segment"
    assert os.path.samefile(blob, src / "indices" / "abc" / "0" / "__blob")
    # Rewritten by later snapshots: never shared with the live repository.
    assert not os.path.samefile(tmp_path / "copy" / "index.latest", src / "index.latest")
    assert (tmp_path / "copy" / "index-0").read_text() == "{}"


def test_commands_fail_early_and_plainly(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env here
    runner = CliRunner()
    folder = tmp_path / "b"
    make_backup(folder)
    (folder / DUMP).unlink()
    result = runner.invoke(main, ["restore", str(folder)])
    assert result.exit_code == 1
    assert "incomplete: postgres.dump is missing" in result.output

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    result = runner.invoke(main, ["backup", "--dest", str(taken)])
    assert result.exit_code == 1
    assert "exists and is not an empty folder" in result.output


def test_index_counts_allow_for_writes_during_the_snapshot():
    info = IndexInfo(kind="documents", aliases=[], docs=10, meta={}, docs_after=14)
    low_high = info.docs_range()
    assert low_high == (10, 14)
    assert Comparison("i", *low_high, 12).ok and Comparison("i", *low_high, 14).ok
    assert not Comparison("i", *low_high, 15).ok and not Comparison("i", *low_high, None).ok
    assert Comparison("i", *low_high, 12).expected_text() == "10..14"
    shrunk = IndexInfo(kind="documents", aliases=[], docs=10, meta={}, docs_after=8)
    assert shrunk.docs_range() == (8, 10)
    older = IndexInfo(kind="documents", aliases=[], docs=10, meta={})  # no second count
    assert older.docs_range() == (10, 10)
    exact = Comparison.exact("documents", 3, 3)
    assert exact.ok and exact.expected_text() == "3"
    assert not Comparison.exact("documents", 3, 4).ok
