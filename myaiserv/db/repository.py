"""One base for the repositories of indexed records (documents, prompts, conversations,
messages, runs), written once as advanced-alchemy writes its repository: read one of the
tenant's rows or a page of them, add rows, delete one, and record a change. Every query
is scoped to one tenant: another tenant's row is not found (404), never shown.

A change to a record is three steps that always go together: its ``version`` goes up by
one (Elasticsearch's external version), the row is flushed, and an outbox row is written
in the same transaction, so the index follows once the caller's unit of work commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, get_args
from uuid import UUID

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from myaiserv.db.index_state import pending_values
from myaiserv.db.models import IndexStatus, TenantRecord
from myaiserv.db.outbox import Change, OutboxRepository
from myaiserv.errors import NotFoundError
from myaiserv.kit.pagination import page_of, paginate
from myaiserv.search.kinds import EntityKind

RecordT = TypeVar("RecordT", bound=TenantRecord)


class RecordRepository(Generic[RecordT]):
    """The SQL every record shares. A subclass names its ``model``, the index ``kind``
    its outbox rows carry, and the ``noun`` its errors use ("document 1234 not found")."""

    model: type[RecordT]
    kind: EntityKind
    noun: str

    def __init__(self, session: AsyncSession, tenant_id: UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.outbox = OutboxRepository(session)

    # -- reads -------------------------------------------------------------------------

    def scoped(self, *where: ColumnElement[bool]) -> Select[RecordT]:
        """This tenant's rows (that match ``where``)."""
        return select(self.model).where(self.model.tenant_id == self.tenant_id, *where)

    async def get(self, entity_id: UUID, *, for_update: bool = False) -> RecordT:
        """The tenant's row; NotFoundError (404) when it has none of this id. ``for_update``
        locks it until the transaction ends."""
        stmt = self.scoped(self.model.id == entity_id)
        if for_update:
            stmt = stmt.with_for_update()
        found = await self.session.scalar(stmt)
        if found is None:
            raise NotFoundError(f"{self.noun} {entity_id} not found")
        return found

    async def page(
        self,
        *where: ColumnElement[bool],
        cursor: str | None,
        limit: int,
        index_status: IndexStatus | None = None,
    ) -> tuple[list[RecordT], str | None]:
        """Newest first (only those in ``index_status``), continuing after ``cursor``; the
        cursor of the next page, or None on the last one."""
        if index_status is not None:
            where = (*where, self.model.index_status == index_status)
        stmt = paginate(self.scoped(*where), self.model.created_at, self.model.id, cursor, limit)
        return page_of(list((await self.session.scalars(stmt)).all()), limit)

    async def index_counts(self) -> dict[IndexStatus, int]:
        """How many of the tenant's rows are in each index state (every state named, 0
        when none): the backlog (``pending``) and the failures (``failed``) at a glance."""
        stmt = (
            select(self.model.index_status, func.count())
            .where(self.model.tenant_id == self.tenant_id)
            .group_by(self.model.index_status)
        )
        found = dict((await self.session.execute(stmt)).all())
        return {status: int(found.get(status, 0)) for status in get_args(IndexStatus)}

    # -- writes ------------------------------------------------------------------------

    async def add_many(
        self, rows: Sequence[Mapping[str, Any]], *, unless_taken: Sequence[str] = ()
    ) -> list[RecordT]:
        """Insert rows for this tenant and return them as stored. With ``unless_taken``
        (the columns of a unique constraint), a row whose key is taken is skipped and not
        returned. The caller records the changes (``record``)."""
        if not rows:
            return []
        stmt = insert(self.model).values([{**row, "tenant_id": self.tenant_id} for row in rows])
        if unless_taken:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(unless_taken))
        result = await self.session.scalars(
            stmt.returning(self.model), execution_options={"populate_existing": True}
        )
        return list(result.all())

    async def add(self, values: Mapping[str, Any]) -> RecordT:
        """Insert one row for this tenant and return it as stored."""
        [added] = await self.add_many([values])
        return added

    async def delete(self, entity_id: UUID, *where: ColumnElement[bool]) -> int | None:
        """Delete the tenant's row (that also matches ``where``); the version it had, or
        None when there was none. The caller records the change (``deleted``)."""
        return await self.session.scalar(
            delete(self.model)
            .where(self.model.id == entity_id, self.model.tenant_id == self.tenant_id, *where)
            .returning(self.model.version)
        )

    async def remove(self, entity_id: UUID) -> None:
        """Delete the tenant's row and record the delete; NotFoundError (404) when there
        is none."""
        version = await self.delete(entity_id)
        if version is None:
            raise NotFoundError(f"{self.noun} {entity_id} not found")
        await self.record([self.deleted(entity_id, version)])

    async def touch(self, entity: RecordT) -> None:
        """``entity`` changed: one version up, written now, pending in the index, flushed
        (constraint errors surface here) and reloaded, and its outbox row written."""
        entity.version += 1
        entity.updated_at = func.now()  # the database's clock, as every write's
        for column, value in pending_values().items():
            setattr(entity, column, value)
        await self.session.flush()
        await self.session.refresh(entity)
        await self.record([self.upserted(entity.id, entity.version)])

    # -- the outbox --------------------------------------------------------------------

    def upserted(self, entity_id: UUID, version: int) -> Change:
        """The index entry of this record must become ``version``."""
        return Change.upsert(self.tenant_id, self.kind, entity_id, version)

    def deleted(self, entity_id: UUID, version: int) -> Change:
        """This record, last at ``version``, is gone."""
        return Change.delete(self.tenant_id, self.kind, entity_id, version)

    async def record(self, changes: Iterable[Change]) -> None:
        """Write the outbox rows of ``changes`` (of any kind) in one statement."""
        await self.outbox.add(changes)
