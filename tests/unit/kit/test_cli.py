"""The bootstrap every command shares (myaiserv/kit/cli.py): one message and exit status
for a bad variable, whichever command reads the settings; known errors end a command
plainly, never with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from myaiserv.cli import main
from myaiserv.config import Settings
from myaiserv.errors import NotFoundError
from myaiserv.kit.cli import run

BAD = {"DATABASE_URL": "mysql://root@localhost/app"}


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # settings read .env from the working folder


@pytest.fixture
def _logging_restored() -> Iterator[None]:
    """``run`` configures logging for its process: put the test process's back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    "args",
    [
        ["serve"],
        ["db", "current"],
        ["tenants", "create", "acme"],
        ["audit"],
        ["secrets", "list"],
        ["backup"],
        ["restore", "."],
        ["indexer", "status"],
        ["index", "init"],
        ["ingest", "--tenant", "acme", "."],
    ],
    ids=" ".join,
)
def test_a_bad_variable_stops_every_command_with_one_message(args: list[str]) -> None:
    result = CliRunner().invoke(main, args, env=BAD)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("myaiserv: invalid configuration:\n  DATABASE_URL: ")
    assert result.exception is not None and isinstance(result.exception, SystemExit)


def _command(error: Exception) -> click.Command:
    async def job(settings: Settings) -> None:
        assert isinstance(settings, Settings)
        raise error

    @click.command()
    def command() -> None:
        run(job, reported=(LookupError,))

    return command


@pytest.mark.usefixtures("_logging_restored")
def test_an_app_error_ends_the_command_with_its_detail() -> None:
    result = CliRunner().invoke(_command(NotFoundError("tenant 'x' not found")))
    assert (result.exit_code, result.output) == (1, "myaiserv: tenant 'x' not found\n")


@pytest.mark.usefixtures("_logging_restored")
def test_a_reported_error_is_a_plain_click_error() -> None:
    result = CliRunner().invoke(_command(KeyError("no key")))
    assert (result.exit_code, result.output) == (1, "Error: 'no key'\n")


@pytest.mark.usefixtures("_logging_restored")
def test_other_errors_are_not_swallowed() -> None:
    result = CliRunner().invoke(_command(RuntimeError("bug")))
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
