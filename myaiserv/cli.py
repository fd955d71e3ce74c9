"""The `myaiserv` command line: serve, db, stack.

Heavy imports (Litestar, SQLAlchemy, models) happen inside commands, so `myaiserv stack`
stays quick and works before anything else is configured.
"""

from __future__ import annotations

import os
import sys

import click

from myaiserv.stack.cli import stack


def _settings():
    from myaiserv.config import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"myaiserv: {exc}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="myaiserv")
def main() -> None:
    """MyAIServ: search-and-RAG backend for LLM applications."""


@main.command()
@click.option("--host", default=None, help="Bind address [HOST, 0.0.0.0].")
@click.option("--port", type=int, default=None, help="Port [PORT, 8000].")
@click.option("--workers", type=int, default=None, help="Worker processes [MYAISERV_WORKERS, 1].")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def serve(host: str | None, port: int | None, workers: int | None, reload: bool) -> None:
    """Run the HTTP API."""
    # Workers are separate processes that read settings themselves: pass overrides on.
    for name, value in (("HOST", host), ("PORT", port), ("MYAISERV_WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value)
    settings = _settings()

    import uvicorn

    from myaiserv.logging import configure_logging

    configure_logging(settings.log_level)
    uvicorn.run(
        "myaiserv.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        reload=reload,
        log_config=None,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=20,
    )


@main.group()
def db() -> None:
    """Database schema migrations (Alembic)."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: the newest)."""
    from myaiserv.db import migrate

    migrate.upgrade(_settings(), revision)


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (e.g. -1, or base)."""
    from myaiserv.db import migrate

    migrate.downgrade(_settings(), revision)


@db.command()
def current() -> None:
    """Show the schema revision the database is at."""
    from myaiserv.db import migrate

    migrate.current(_settings())


main.add_command(stack)

if __name__ == "__main__":
    main()
