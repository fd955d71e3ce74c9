"""`myaiserv secrets`: provider API keys, encrypted at rest (see ``myaiserv.secrets.box``
for the rotation procedure). Values are read from stdin or an environment variable,
never from the command line (it ends up in shell history and ``ps``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from myaiserv.kit.cli import run, transaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from myaiserv.config import Settings
    from myaiserv.secrets.box import SecretBox
    from myaiserv.secrets.store import SecretInfo

T = TypeVar("T")
NAME = click.argument("name", metavar="NAME")


def _run_with_keys(job: Callable[[AsyncSession, SecretBox], Awaitable[T]]) -> T:
    """Run ``job`` in one transaction with the deployment's keys; keys that are missing,
    malformed or cannot decrypt a value are a plain error, not a traceback."""
    from myaiserv.secrets.box import SecretBox, SecretsError

    async def with_box(settings: Settings) -> T:
        box = SecretBox([k.get_secret_value() for k in settings.secrets.keys])
        async with transaction(settings) as session:
            return await job(session, box)

    return run(with_box, reported=(SecretsError,))


@click.group()
def secrets() -> None:
    """Provider API keys, encrypted in PostgreSQL under MYAISERV_SECRETS__KEYS."""


@secrets.command("generate-key")
def generate_key() -> None:
    """Print a new encryption key (put it first in MYAISERV_SECRETS__KEYS)."""
    from myaiserv.secrets.box import generate_key as new_key

    click.echo(new_key())


@secrets.command("set")
@NAME
@click.option("--from-env", "env_var", metavar="VAR", help="Read the value from $VAR.")
def set_secret(name: str, env_var: str | None) -> None:
    """Store NAME (e.g. the `api_key_secret` of a provider); the value comes from stdin
    (or --from-env VAR). Instances pick a changed value up within secrets.cache_ttl_s."""
    from myaiserv.secrets.service import SecretService

    if env_var:
        value = os.environ.get(env_var, "")
    elif sys.stdin.isatty():
        value = click.prompt("value", hide_input=True)
    else:
        value = sys.stdin.read()
    if not value.strip():
        raise click.ClickException("empty value: nothing stored")

    async def job(session: AsyncSession, box: SecretBox) -> bool:
        return await SecretService(session, box).set(name, value)

    replaced = _run_with_keys(job)
    click.echo(f"{'replaced' if replaced else 'stored'} secret {name!r} (encrypted)")


@secrets.command("list")
def list_secrets() -> None:
    """Names, the key that encrypted each, and when it changed (never values)."""
    from myaiserv.secrets.service import SecretService

    async def job(session: AsyncSession, box: SecretBox) -> tuple[str, list[SecretInfo]]:
        return box.primary_key_id, await SecretService(session, box).list()

    primary, rows = _run_with_keys(job)
    for row in rows:
        note = "" if row.key_id == primary else "  (older key: run `myaiserv secrets rotate`)"
        click.echo(f"{row.name}\tkey {row.key_id}\t{row.updated_at.isoformat()}{note}")


@secrets.command("delete")
@NAME
def delete_secret(name: str) -> None:
    from myaiserv.secrets.service import SecretService

    async def job(session: AsyncSession, box: SecretBox) -> bool:
        return await SecretService(session, box).remove(name)

    if not _run_with_keys(job):
        raise click.ClickException(f"no secret named {name!r}")
    click.echo(f"deleted secret {name!r}")


@secrets.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret under the first key of MYAISERV_SECRETS__KEYS.
    Instances keep serving throughout: each decrypts with any configured key."""
    from myaiserv.secrets.service import SecretService

    async def job(session: AsyncSession, box: SecretBox) -> tuple[int, int]:
        return await SecretService(session, box).reencrypt()

    done, current = _run_with_keys(job)
    click.echo(f"re-encrypted {done} secret(s); {current} already under the current key")
