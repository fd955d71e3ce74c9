"""Index generations, the keys of cached result pages, kept in PostgreSQL.

The indexer bumps the generation of each (tenant, kind) it wrote in the very transaction
that settles the write (``bump``); a reindex or a restore bumps a kind for every tenant
(``ALL_TENANTS``). A cached page's key holds the generations it was computed at
(``read``), so once a write is settled no request can find a page older than it: the key
it would look up has changed. Being in the settlement's transaction, the bump cannot fail
on its own and leave stale pages served, as a bump in a separate store (Redis) could;
the cost is one primary-key read per cacheable request.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from myaiserv.db.models import IndexGeneration
from myaiserv.search.kinds import Kind

ALL_TENANTS = "*"
NONE_YET = "0"  # the generation of a scope nothing was ever settled in


async def bump(session: AsyncSession, pairs: Iterable[tuple[str, Kind]]) -> None:
    """A new generation for each (tenant id or ``ALL_TENANTS``, kind), in ``session``'s
    transaction (sorted, so concurrent batches lock the rows in one order)."""
    rows = [{"scope": scope, "kind": kind} for scope, kind in sorted(set(pairs))]
    if rows:
        stmt = insert(IndexGeneration).values(rows)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[IndexGeneration.scope, IndexGeneration.kind],
                set_={"generation": func.gen_random_uuid()},
            )
        )


def scopes_of(tenant_id: str, kinds: Iterable[Kind]) -> list[tuple[str, Kind]]:
    """The (scope, kind) pairs whose generations key a page of ``tenant_id`` over
    ``kinds``, in key order."""
    return [(scope, kind) for kind in sorted(kinds) for scope in (tenant_id, ALL_TENANTS)]


class GenerationReader:
    """Reads the generations keying a page (for the result and answer caches), on a
    connection of the pool (no ORM session: this is on every cacheable request's path)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def read(self, tenant_id: str, kinds: Iterable[Kind]) -> list[str]:
        """The generation of each pair of ``scopes_of(tenant_id, kinds)``, in that order.
        Raises SQLAlchemy's and the driver's errors: the caller decides what they mean."""
        pairs = scopes_of(tenant_id, kinds)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(IndexGeneration.scope, IndexGeneration.kind, IndexGeneration.generation)
                .where(IndexGeneration.scope.in_([tenant_id, ALL_TENANTS]))
                .where(IndexGeneration.kind.in_(sorted({kind for _, kind in pairs})))
            )
            found = {(scope, kind): str(generation) for scope, kind, generation in rows}
        return [found.get(pair, NONE_YET) for pair in pairs]
