"""`myaiserv secrets`: provider API keys, encrypted at rest (see ``myaiserv.secrets.box``
for the rotation procedure). Values are read from stdin or an environment variable,
never from the command line (it ends up in shell history and ``ps``)."""

from __future__ import annotations

import asyncio
import os
import sys

import click

NAME = click.argument("name", metavar="NAME")


def _box(settings):
    from myaiserv.secrets.box import SecretBox, SecretsError

    try:
        return SecretBox([k.get_secret_value() for k in settings.secrets.keys])
    except SecretsError as exc:
        raise click.ClickException(str(exc)) from None


def _run(job):
    from myaiserv.cli import _settings
    from myaiserv.db.engine import create_engine, create_sessionmaker
    from myaiserv.secrets.box import SecretsError

    settings = _settings()
    box = _box(settings)

    async def main():
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await job(session, box)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except SecretsError as exc:
        raise click.ClickException(str(exc)) from None


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
    from myaiserv.audit import log as audit
    from myaiserv.secrets import store

    if env_var:
        value = os.environ.get(env_var, "")
    elif sys.stdin.isatty():
        value = click.prompt("value", hide_input=True)
    else:
        value = sys.stdin.read()
    value = value.strip()
    if not value:
        raise click.ClickException("empty value: nothing stored")

    async def job(session, box):
        replaced = await store.put(session, box, name, value)
        audit.add(
            session, audit.SECRET_SET, actor=audit.CLI, tenant_id=None, target=f"secret:{name}"
        )
        return replaced

    replaced = _run(job)
    click.echo(f"{'replaced' if replaced else 'stored'} secret {name!r} (encrypted)")


@secrets.command("list")
def list_secrets() -> None:
    """Names, the key that encrypted each, and when it changed (never values)."""
    from myaiserv.secrets import store

    async def job(session, box):
        return box.primary_key_id, await store.describe(session)

    primary, rows = _run(job)
    for row in rows:
        note = "" if row.key_id == primary else "  (older key: run `myaiserv secrets rotate`)"
        click.echo(f"{row.name}\tkey {row.key_id}\t{row.updated_at.isoformat()}{note}")


@secrets.command("delete")
@NAME
def delete_secret(name: str) -> None:
    from myaiserv.audit import log as audit
    from myaiserv.secrets import store

    async def job(session, box):
        found = await store.remove(session, name)
        if found:
            audit.add(
                session,
                audit.SECRET_DELETED,
                actor=audit.CLI,
                tenant_id=None,
                target=f"secret:{name}",
            )
        return found

    if not _run(job):
        raise click.ClickException(f"no secret named {name!r}")
    click.echo(f"deleted secret {name!r}")


@secrets.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret under the first key of MYAISERV_SECRETS__KEYS.
    Instances keep serving throughout: each decrypts with any configured key."""
    from myaiserv.audit import log as audit
    from myaiserv.secrets import store

    async def job(session, box):
        done, current = await store.rotate(session, box)
        audit.add(
            session,
            audit.SECRETS_ROTATED,
            actor=audit.CLI,
            tenant_id=None,
            target=f"key:{box.primary_key_id}",
            details={"reencrypted": done, "already_current": current},
        )
        return done, current

    done, current = _run(job)
    click.echo(f"re-encrypted {done} secret(s); {current} already under the current key")
