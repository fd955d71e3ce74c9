"""All SQL about runs. Every query is scoped to one tenant."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import func, select, update

from myaiserv.db.index_state import pending_values
from myaiserv.db.models import Conversation, IndexStatus, Prompt, PromptVersion, Run
from myaiserv.db.repository import RecordRepository


class RunRepository(RecordRepository[Run]):
    model = Run
    kind = "runs"
    noun = "run"

    async def conversation_exists(self, conversation_id: UUID) -> bool:
        """Key-share locked: the conversation cannot be deleted before this run commits."""
        found = await self.session.scalar(
            select(Conversation.id)
            .where(Conversation.id == conversation_id, Conversation.tenant_id == self.tenant_id)
            .with_for_update(read=True, key_share=True)
        )
        return found is not None

    async def prompt_version(self, prompt_version_id: UUID) -> tuple[str, int] | None:
        """(prompt name, version number) of this tenant's prompt version, key-share locked
        like ``conversation_exists``."""
        row = (
            await self.session.execute(
                select(Prompt.name, PromptVersion.number)
                .join(Prompt, Prompt.id == PromptVersion.prompt_id)
                .where(
                    PromptVersion.id == prompt_version_id,
                    PromptVersion.tenant_id == self.tenant_id,
                )
                .with_for_update(of=PromptVersion, read=True, key_share=True)
            )
        ).first()
        return (row[0], int(row[1])) if row else None

    async def detach_conversation(self, conversation_id: UUID) -> list[tuple[UUID, int]]:
        """Before a conversation is deleted: unlink its runs (the foreign key would do it
        too, but silently) and bump their versions, so their index entries follow.
        Returns (id, new version) per run."""
        rows = await self.session.execute(
            update(Run)
            .where(Run.conversation_id == conversation_id, Run.tenant_id == self.tenant_id)
            .values(
                conversation_id=None,
                version=Run.version + 1,
                updated_at=func.now(),
                **pending_values(),
            )
            .returning(Run.id, Run.version)
        )
        return [(rid, int(version)) for rid, version in rows]

    async def list(
        self,
        *,
        cursor: str | None,
        limit: int,
        provider: str | None = None,
        model: str | None = None,
        status: str | None = None,
        index_status: IndexStatus | None = None,
    ) -> tuple[list[Run], str | None]:
        where = [
            column == value
            for column, value in (
                (Run.provider, provider),
                (Run.model, model),
                (Run.status, status),
            )
            if value is not None
        ]
        return await self.page(*where, cursor=cursor, limit=limit, index_status=index_status)
