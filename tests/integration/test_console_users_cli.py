"""`myaiserv users` as an operator runs it, and the first admin `make run` creates on a
fresh installation: a database of its own, built by the real migrations, with no user."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from myaiserv.config import Settings
from myaiserv.db import migrate
from tests.support import admin_sql, operator_cli

Cli = Callable[..., Any]


@pytest.fixture
async def fresh(settings: Settings, database: str) -> AsyncIterator[Settings]:
    """A fresh installation's database (migrated, empty)."""
    url = make_url(settings.database_url)
    name = f"{url.database}_fresh_{uuid.uuid4().hex[:6]}"
    fresh_url = url.set(database=name).render_as_string(hide_password=False)
    await admin_sql(settings.database_url, f'CREATE DATABASE "{name}"')
    try:
        moved = settings.model_copy(update={"database_url": fresh_url})
        await asyncio.to_thread(migrate.upgrade, moved)
        yield moved
    finally:
        await admin_sql(settings.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli_on(settings: Settings, folder: Path) -> Cli:
    command = operator_cli(settings, folder, DATABASE_URL=settings.database_url)

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(command, *args)

    return run


async def test_the_first_admin_of_a_fresh_installation_once(
    fresh: Settings, tmp_path: Path
) -> None:
    cli = cli_on(fresh, tmp_path)
    first = await cli(
        "users", "first-admin", "--tenant", "acme", "--email", "Ops@Acme.test",
        "--console-url", "http://127.0.0.1:8000/console/",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    lines = dict(line.split("\t", 1) for line in first.stdout.splitlines())
    assert lines["tenant"] == "acme"
    assert lines["api key"].startswith("mas_")
    assert lines["user"] == "ops@acme.test (admin)"
    assert re.fullmatch(r"http://localhost:8000/console/set-password\?token=[\w-]+", lines["link"])

    again = await cli("users", "first-admin", "--tenant", "acme", "--email", "x@acme.test")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("console: users exist; log in at the console")
    listed = await cli("users", "list", "--tenant", "acme")
    assert listed.stdout.splitlines() == [
        "ops@acme.test\tadmin\tinvited\tlast login never"
    ]  # the second call created nobody


async def test_users_create_and_a_new_link(fresh: Settings, tmp_path: Path) -> None:
    cli = cli_on(fresh, tmp_path)
    assert (await cli("tenants", "create", "beta")).returncode == 0
    created = await cli("users", "create", "--tenant", "beta", "--email", "a@beta.test")
    assert created.returncode == 0, created.stderr
    assert "shown only now" in created.stderr
    link = dict(line.split("\t", 1) for line in created.stdout.splitlines())["link"]
    again = await cli("users", "link", "a@beta.test")
    assert again.returncode == 0, again.stderr
    assert dict(line.split("\t", 1) for line in again.stdout.splitlines())["link"] != link
    missing = await cli("users", "create", "--tenant", "nope", "--email", "b@beta.test")
    assert missing.returncode == 1 and "tenant 'nope' not found" in missing.stderr
    duplicate = await cli("users", "create", "--tenant", "beta", "--email", "A@beta.test")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
