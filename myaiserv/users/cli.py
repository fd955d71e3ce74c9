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
    from myaiserv.users.service import PasswordLink


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
