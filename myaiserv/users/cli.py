"""`myaiserv users`: console users, for the operator who starts a tenant's first admin.
Passwords are never given on the command line: each user sets theirs with the one-time
link printed here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from myaiserv.kit.cli import run, transaction

if TYPE_CHECKING:
    from myaiserv.config import Settings
    from myaiserv.db.models import User
    from myaiserv.users.service import FirstAdmin, PasswordLink


@click.group()
def users() -> None:
    """Console users (log in at /console)."""


def _print_link(link: PasswordLink) -> None:
    click.echo(f"user\t{link.user.email} ({link.user.role})")
    click.echo(f"link\t{link.url}")
    click.echo(f"expires\t{link.expires_at.isoformat()}")
    click.echo("Open the link once to set the password; it is shown only now.", err=True)


@users.command("create")
@click.option("--tenant", required=True, help="The tenant's name.")
@click.option("--email", required=True)
@click.option(
    "--role", type=click.Choice(["viewer", "editor", "admin"]), default="viewer", show_default=True
)
def users_create(tenant: str, email: str, role: str) -> None:
    """Create a user of TENANT and print a one-time link to set its password."""

    async def job(settings: Settings) -> PasswordLink:
        from myaiserv.users.service import UserService

        async with transaction(settings) as session:
            return await UserService(session, settings.console).create_in(tenant, email, role)

    _print_link(run(job))


@users.command("first-admin")
@click.option("--tenant", required=True, help="The tenant's name (created if missing).")
@click.option("--email", required=True)
@click.option("--console-url", default="", help="Where the console is, to print it.")
def users_first_admin(tenant: str, email: str, console_url: str) -> None:
    """On a fresh installation (no user at all): create TENANT if missing (printing its
    first API key) and its first admin (printing the one-time link). Once any user exists
    it changes nothing and says how to get in."""

    async def job(settings: Settings) -> FirstAdmin | None:
        from myaiserv.auth.keys import SCOPES
        from myaiserv.users.service import UserService

        async with transaction(settings) as session:
            service = UserService(session, settings.console)
            return await service.first_admin(tenant, email, scopes=list(SCOPES))

    first = run(job)
    where = console_url or "the console"
    if first is None:
        click.echo(
            f"console: users exist; log in at {where} (a lost password: "
            "`myaiserv users link EMAIL`; another user: `myaiserv users create`)"
        )
        return
    if first.key is not None:
        click.echo(f"tenant\t{first.key.tenant_name}")
        click.echo(f"api key\t{first.key.plaintext}")
    _print_link(first.link)


@users.command("link")
@click.argument("email")
def users_link(email: str) -> None:
    """Print a new one-time link for EMAIL (a lost invitation, a forgotten password)."""

    async def job(settings: Settings) -> PasswordLink:
        from myaiserv.errors import NotFoundError
        from myaiserv.users.service import UserService

        async with transaction(settings) as session:
            service = UserService(session, settings.console)
            user = await service.users.get_by_email(email.strip().lower())
            if user is None:
                raise NotFoundError(f"no user with email {email!r}")
            return await service.reissue_link(user.tenant_id, user.id)

    _print_link(run(job))


@users.command("list")
@click.option("--tenant", required=True, help="The tenant's name.")
def users_list(tenant: str) -> None:
    """List TENANT's users (email, role, state, last login)."""

    async def job(settings: Settings) -> list[User]:
        from myaiserv.auth.repository import TenantRepository
        from myaiserv.errors import NotFoundError
        from myaiserv.users.service import UserService

        async with transaction(settings) as session:
            found = await TenantRepository(session).get_by_name(tenant)
            if found is None:
                raise NotFoundError(f"tenant {tenant!r} not found")
            return await UserService(session, settings.console).list(found.id)

    for user in run(job):
        state = "disabled" if user.disabled_at else ("active" if user.password_hash else "invited")
        last = user.last_login_at.isoformat() if user.last_login_at else "never"
        click.echo(f"{user.email}\t{user.role}\t{state}\tlast login {last}")
