"""Finding PostgreSQL's programs: the folder in $MYAISERV_PG_BINDIR wins when it holds
every tool asked for; otherwise nothing is found, and backups say what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from myaiserv.backup.errors import BackupError
from myaiserv.backup.pgtools import find_tool
from myaiserv.kit.pgbin import find_bindir

TOOLS = ("myaiserv-test-pg-a", "myaiserv-test-pg-b")  # on no machine


def test_the_configured_folder_wins_when_it_holds_every_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for tool in TOOLS:
        (tmp_path / tool).touch()
    monkeypatch.setenv("MYAISERV_PG_BINDIR", str(tmp_path))
    assert find_bindir(TOOLS) == tmp_path


def test_a_folder_missing_one_tool_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / TOOLS[0]).touch()
    monkeypatch.setenv("MYAISERV_PG_BINDIR", str(tmp_path))
    assert find_bindir(TOOLS) is None


def test_a_missing_client_tool_is_a_backup_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MYAISERV_PG_BINDIR", raising=False)
    with pytest.raises(
        BackupError, match=r"myaiserv-test-pg-a not found: install .*MYAISERV_PG_BINDIR"
    ):
        find_tool(TOOLS[0])
