"""What every command of `myaiserv` shares: its settings, its event loop, the resources it
opens and closes, and one way of saying why it stopped.

A command builds a job (a coroutine function of the settings) and hands it to ``run``:

    run(in_transaction(lambda session: TenantService(session).create_tenant(name)))

Heavy imports stay inside the functions, so `myaiserv stack` and `--help` stay quick.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from myaiserv.config import Settings
    from myaiserv.resources import Resources

T = TypeVar("T")
# A command's work: a coroutine function of the settings.
Job = Callable[["Settings"], Coroutine[Any, Any, T]]


def fail(message: str, *, code: int = 1) -> NoReturn:
    """End the command: ``message`` on stderr, exit status ``code``."""
    click.echo(message, err=True)
    sys.exit(code)


def load_settings() -> Settings:
    """The settings from the environment; a bad variable ends the command with exit
    status 2 and a line per variable, never a traceback."""
    from myaiserv import config

    try:
        return config.load_settings()
    except config.SettingsError as exc:
        fail(f"myaiserv: {exc}", code=2)


def run(job: Job[T], *, reported: tuple[type[Exception], ...] = ()) -> T:
    """Load the settings, configure logging and run ``job(settings)`` to completion.

    An ``AppError`` ends the command with its detail (exit 1); an error of a ``reported``
    type becomes a click error with its message (exit 1, ``Error: ...``).
    """
    from myaiserv.errors import AppError
    from myaiserv.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, urls=settings.urls())
    try:
        return asyncio.run(job(settings))
    except reported as exc:
        raise click.ClickException(str(exc)) from None
    except AppError as exc:
        fail(f"myaiserv: {exc.detail}")


@asynccontextmanager
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on an engine of its own, disposed on exit."""
    from myaiserv.db.engine import create_engine, create_sessionmaker

    engine = create_engine(settings)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def transaction(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One session in one transaction: committed when the block ends, rolled back when it
    raises."""
    async with sessions(settings) as sessionmaker, sessionmaker() as session, session.begin():
        yield session


def in_transaction(fn: Callable[[AsyncSession], Awaitable[T]]) -> Job[T]:
    """A job that runs ``fn`` in one transaction (``transaction``)."""

    async def job(settings: Settings) -> T:
        async with transaction(settings) as session:
            return await fn(session)

    return job


def with_resources(fn: Callable[[Resources], Awaitable[T]]) -> Job[T]:
    """A job that runs ``fn`` with every resource of the process (engine, Elasticsearch,
    Redis, the embedding model), closed when it returns."""

    async def job(settings: Settings) -> T:
        from myaiserv.resources import open_resources

        async with open_resources(settings) as resources:
            return await fn(resources)

    return job
