"""The connections a backup or a restore opens for itself, and PostgreSQL's failures
translated into ``BackupError``s that name the server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import sqlalchemy.exc
from elasticsearch import AsyncElasticsearch
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from myaiserv.backup.errors import BackupError
from myaiserv.config import Settings
from myaiserv.search.client import create_es_client


@contextlib.asynccontextmanager
async def open_clients(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncEngine, AsyncElasticsearch]]:
    """An engine without a pool (a restore drops and recreates tables under any connection
    a pool would keep) and an Elasticsearch client, both closed on the way out."""
    engine = create_async_engine(
        settings.database_url,
        poolclass=NullPool,
        connect_args={
            "timeout": settings.db.connect_timeout_s,
            "server_settings": {"application_name": "myaiserv-backup"},
        },
    )
    es = create_es_client(settings)
    try:
        yield engine, es
    finally:
        await es.close()
        await engine.dispose()


@contextlib.asynccontextmanager
async def pg_errors(settings: Settings, doing: str) -> AsyncIterator[None]:
    """A PostgreSQL failure while ``doing`` becomes a ``BackupError`` naming the server
    (host, port and database: never the URL, which may hold the password)."""
    try:
        yield
    except (sqlalchemy.exc.DBAPIError, OSError) as exc:
        url = make_url(settings.database_url)
        where = f"{url.host}:{url.port or 5432}/{url.database}"
        raise BackupError(f"{doing}: PostgreSQL at {where}: {str(exc).splitlines()[0]}") from None
