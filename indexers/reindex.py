"""Rebuild indices from PostgreSQL with no downtime: one kind (``reindex``), or every kind
with another embedding model (``switch_model``).

create new concrete indices from the current spec -> register them as "building" (from
then on every indexer writes each change to them as well as to the serving index, with
each index's own model) -> backfill every entity from PostgreSQL -> refresh -> swap the
aliases atomically (every kind in one call) -> drop the build rows -> drop the old indices
(after a switch, once every instance has stopped reading them).

Searches read the index behind the alias (resolved per process for a few seconds, see
``search.guard``) and embed their query with that index's model, so they see the old
index with the old model until the swap and the new ones with the new model after it.
External versions make the backfill and the indexers' writes commute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import delete, select

from indexers.bulk import OK, write
from indexers.sources import Builder, Entity, Pending, Target
from myaiserv.db.generations import ALL_TENANTS, bump
from myaiserv.db.models import (
    RECORD_MODELS,
    IndexBuild,
)
from myaiserv.embeddings.cache import CachedEmbedder
from myaiserv.embeddings.registry import ModelUnavailableError
from myaiserv.logging import get_logger
from myaiserv.resources import Resources
from myaiserv.search.guard import GUARD_TTL_S
from myaiserv.search.kinds import INDEX_OF, KINDS, Kind, as_kind

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


async def _backfill(
    resources: Resources,
    kind: Kind,
    target: Target,
    embedder: CachedEmbedder,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Every entity of ``kind`` from PostgreSQL into ``target``, embedded with
    ``embedder`` (the target's model); (entities, actions written)."""
    es = resources.es
    entities = actions_written = 0
    # Bulk-load settings: no refreshes while filling.
    await es.indices.put_settings(index=target.index, settings={"refresh_interval": "-1"})
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
                builder = Builder(session, es, embedder, resources.settings, {kind: [target]})
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
                    f"{len(bad)} entities could not be written to {target.index}: "
                    f"{next(iter(bad.values())).error}"
                )
            entities += len(ids)
            actions_written += len(actions)
            last = ids[-1]
            if progress:
                progress(len(ids))
    await es.indices.put_settings(
        index=target.index,
        settings={"refresh_interval": resources.indices.options.refresh_interval},
    )
    await es.indices.refresh(index=target.index)
    return entities, actions_written


async def _model(resources: Resources, model_id: str) -> CachedEmbedder:
    """The cached embedder of ``model_id``, loaded; ReindexError when it cannot be."""
    try:
        return resources.embedder.with_model(await resources.embedders.get(model_id))
    except ModelUnavailableError as exc:
        raise ReindexError(f"{exc}; run `myaiserv models install {model_id}`") from exc


async def _build(resources: Resources, new: dict[Kind, Target]) -> None:
    """Register new indices as building: every indexer writes to them from its next batch."""
    async with resources.sessionmaker() as session, session.begin():
        session.add_all(IndexBuild(kind=kind, index_name=t.index) for kind, t in new.items())


async def _built(resources: Resources, new: dict[Kind, Target]) -> None:
    """Drop the build rows (after the swap) and the result pages cached from old indices."""
    names = [t.index for t in new.values()]
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(delete(IndexBuild).where(IndexBuild.index_name.in_(names)))
        await bump(session, [(ALL_TENANTS, kind) for kind in new])


async def _abandon(resources: Resources, new: dict[Kind, Target]) -> None:
    names = [t.index for t in new.values()]
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(delete(IndexBuild).where(IndexBuild.index_name.in_(names)))
    await resources.es.indices.delete(index=",".join(names), ignore_unavailable=True)


async def reindex(
    resources: Resources,
    kind: str,
    *,
    batch_size: int = 200,
    keep_old: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReindexResult:
    """Rebuild one kind's index with the current spec and settings, keeping the model its
    index has now (``switch_model`` changes the model of every kind at once)."""
    index_kind = as_kind(kind)
    if index_kind is None:
        raise ReindexError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    started = time.perf_counter()
    indices = resources.indices
    current = await indices.ensure(index_kind)
    model_id = (await indices.serving([index_kind])).model_of(current) or indices.model.model_id
    embedder = await _model(resources, model_id)
    new_index = await indices.create_index(index_kind, embedder.embedder.info)
    target = Target(new_index, model_id)
    await _build(resources, {index_kind: target})
    log.info("reindex started", kind=kind, index=new_index, model=model_id)
    try:
        entities, actions = await _backfill(
            resources, index_kind, target, embedder, batch_size=batch_size, progress=progress
        )
        old_index = await indices.swap_alias(index_kind, new_index)
    except BaseException:
        await _abandon(resources, {index_kind: target})
        raise
    await _built(resources, {index_kind: target})
    if old_index and not keep_old:
        await resources.es.indices.delete(index=old_index, ignore_unavailable=True)
    seconds = time.perf_counter() - started
    log.info("reindex done", kind=kind, index=new_index, old=old_index, entities=entities)
    return ReindexResult(kind, new_index, old_index, entities, actions, seconds)


@dataclass
class SwitchResult:
    model: str
    indices: dict[str, ReindexResult] = field(default_factory=dict)
    seconds: float = 0.0


async def switch_model(
    resources: Resources,
    model_id: str,
    *,
    batch_size: int = 200,
    keep_old: bool = False,
    grace_s: float | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> SwitchResult:
    """Move every kind to embedding model ``model_id`` with no downtime: new indices built
    with it, filled from PostgreSQL while the old ones serve (indexers write every change
    to both, each with its own model), then every alias swapped in one atomic call. The
    old indices are dropped after ``grace_s`` (default: long enough for every instance to
    resolve the new ones and finish the searches under way on the old)."""
    started = time.perf_counter()
    indices = resources.indices
    embedder = await _model(resources, model_id)
    info = embedder.embedder.info
    await indices.ensure_all()
    new = {kind: Target(await indices.create_index(kind, info), model_id) for kind in KINDS}
    await _build(resources, new)
    log.info("model switch started", model=model_id, indices=[t.index for t in new.values()])
    result = SwitchResult(model_id)
    try:
        for kind, target in new.items():
            counted = (lambda n, kind=kind: progress(kind, n)) if progress else None
            entities, actions = await _backfill(
                resources, kind, target, embedder, batch_size=batch_size, progress=counted
            )
            result.indices[kind] = ReindexResult(kind, target.index, None, entities, actions, 0.0)
        old = await indices.swap_aliases({kind: t.index for kind, t in new.items()})
    except BaseException:
        await _abandon(resources, new)
        raise
    await _built(resources, new)
    for kind, name in old.items():
        result.indices[kind].old_index = name
    log.info("model switch swapped", model=model_id, old=old)
    dropped = [name for name in old.values() if name]
    if dropped and not keep_old:
        settings = resources.settings
        wait = GUARD_TTL_S + settings.es.search_timeout_s + 5 if grace_s is None else grace_s
        await asyncio.sleep(wait)
        await resources.es.indices.delete(index=",".join(dropped), ignore_unavailable=True)
    result.seconds = time.perf_counter() - started
    log.info("model switch done", model=model_id, seconds=round(result.seconds, 1))
    return result
