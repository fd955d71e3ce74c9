"""Rebuild one kind's index from PostgreSQL with no downtime.

create a new concrete index from the current spec -> register it as "building" (from
then on every indexer writes each change to it as well as to the alias) -> backfill every
entity from PostgreSQL -> refresh -> swap the alias atomically -> drop the old index.

Searches read the alias throughout, so they see the old index until the swap and the new
one after it. External versions make the backfill and the indexers' writes commute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, select

from indexers.bulk import OK, write
from indexers.sources import Builder, Entity, Pending
from myaiserv.db.generations import ALL_TENANTS, bump
from myaiserv.db.models import (
    RECORD_MODELS,
    IndexBuild,
)
from myaiserv.logging import get_logger
from myaiserv.resources import Resources
from myaiserv.search.kinds import INDEX_OF

log = get_logger("indexers.reindex")


@dataclass
class ReindexResult:
    kind: str
    new_index: str
    old_index: str | None
    entities: int
    actions: int
    seconds: float


class ReindexError(RuntimeError):
    pass


async def reindex(
    resources: Resources,
    kind: str,
    *,
    batch_size: int = 200,
    keep_old: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReindexResult:
    if kind not in set(INDEX_OF.values()):
        raise ReindexError(f"unknown kind {kind!r}; choose from {sorted(set(INDEX_OF.values()))}")
    started = time.perf_counter()
    indices, es = resources.indices, resources.es
    await indices.ensure(kind)
    new_index = await indices.create_index(kind)
    async with resources.sessionmaker() as session, session.begin():
        session.add(IndexBuild(kind=kind, index_name=new_index))
    log.info("reindex started", kind=kind, index=new_index)
    entities = actions_written = 0
    try:
        # Bulk-load settings: no refreshes while filling.
        await es.indices.put_settings(index=new_index, settings={"refresh_interval": "-1"})
        for outbox_kind in (k for k, v in INDEX_OF.items() if v == kind):
            model = RECORD_MODELS[outbox_kind]
            last: UUID | None = None
            while True:
                async with resources.sessionmaker() as session:
                    stmt = select(model.id).order_by(model.id).limit(batch_size)
                    if last is not None:
                        stmt = stmt.where(model.id > last)
                    ids = list(await session.scalars(stmt))
                    if not ids:
                        break
                    builder = Builder(
                        session, es, resources.embedder, resources.settings, {kind: [new_index]}
                    )
                    actions = await builder.build([Pending(Entity(outbox_kind, i)) for i in ids])
                for attempt in range(5):
                    outcomes = await write(es, actions)
                    bad = {g: o for g, o in outcomes.items() if o.status != OK}
                    if not bad:
                        break
                    actions = [a for a in actions if a.group in bad]
                    await asyncio.sleep(min(2**attempt, 10))
                else:
                    raise ReindexError(
                        f"{len(bad)} entities could not be written to {new_index}: "
                        f"{next(iter(bad.values())).error}"
                    )
                entities += len(ids)
                actions_written += len(actions)
                last = ids[-1]
                if progress:
                    progress(len(ids))
        await es.indices.put_settings(
            index=new_index,
            settings={"refresh_interval": indices.options.refresh_interval},
        )
        await es.indices.refresh(index=new_index)
        old_index = await indices.swap_alias(kind, new_index)
    except BaseException:
        async with resources.sessionmaker() as session, session.begin():
            await session.execute(delete(IndexBuild).where(IndexBuild.index_name == new_index))
        await es.indices.delete(index=new_index, ignore_unavailable=True)
        raise
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(delete(IndexBuild).where(IndexBuild.index_name == new_index))
        await bump(session, [(ALL_TENANTS, kind)])  # cached pages of the old index
    if old_index and not keep_old:
        await es.indices.delete(index=old_index, ignore_unavailable=True)
    seconds = time.perf_counter() - started
    log.info("reindex done", kind=kind, index=new_index, old=old_index, entities=entities)
    return ReindexResult(kind, new_index, old_index, entities, actions_written, seconds)
