"""Which index serves each kind, and refusing one that cannot serve this instance."""

from __future__ import annotations

import time

from elasticsearch import AsyncElasticsearch

from myaiserv.errors import DependencyUnavailableError
from myaiserv.logging import get_logger
from myaiserv.search.indices import IndexManager
from myaiserv.search.kinds import Kind

log = get_logger(__name__)

GUARD_TTL_S = 10.0


class IndexGuard:
    """Resolves each kind's alias to the concrete index behind it and the embedding model
    that built it (its ``_meta``), and refuses an index built with another spec or other
    analysis settings (the results would be silently wrong). Searches then read those
    concrete indices and embed their query with that model, so a query embedded with one
    model never meets an index built with another, even while ``index switch-model``
    swaps the aliases. Resolved for a few seconds per process, so it costs no round
    trip per search; a switch keeps the old indices longer than that before dropping
    them."""

    def __init__(self, indices: IndexManager) -> None:
        self.indices = indices
        self._resolved: dict[Kind, tuple[str, str, float]] = {}  # index, model, when

    def due(self, kinds: list[Kind]) -> list[Kind]:
        """The kinds to resolve again (none: ``check`` makes no round trip)."""
        now = time.monotonic()
        return [
            k
            for k in kinds
            if now - self._resolved.get(k, ("", "", float("-inf")))[2] >= GUARD_TTL_S
        ]

    async def check(
        self, es: AsyncElasticsearch, kinds: list[Kind], *, force: bool = False
    ) -> None:
        """Resolve ``kinds`` again, all of them together when any is due (or ``force``),
        so that one search's kinds come from one moment: on one side of a switch."""
        if not force and not self.due(kinds):
            return
        due = list(kinds)
        now = time.monotonic()
        # Elasticsearch's errors are the store's to translate; a missing alias is ours.
        serving = await self.indices.serving(due, es=es)
        for kind in due:
            index = serving.index_of.get(kind)
            if index is None:
                raise DependencyUnavailableError(
                    "elasticsearch",
                    f"the search indices do not exist yet (no index behind "
                    f"{self.indices.alias(kind)}); run `myaiserv index init`",
                )
            meta = serving.meta.get(index, {})
            reason = self.indices.mismatch(kind, index, meta, any_model=True)
            if reason:
                log.error("index refused", index=index, reason=reason)
                raise DependencyUnavailableError("elasticsearch", reason, retry_after_s=60)
            self._resolved[kind] = (index, serving.model_of(index), now)

    def indices_of(self, kinds: list[Kind]) -> list[str]:
        """The concrete indices serving ``kinds`` (checked: ``check`` ran for them)."""
        return [self._resolved[k][0] for k in kinds]

    def model_of(self, kinds: list[Kind]) -> str | None:
        """The embedding model that built the indices serving ``kinds``, None when they
        disagree (resolved at different moments of a switch, or one kind reindexed with
        another model on its own)."""
        models = {self._resolved[k][1] for k in kinds}
        return models.pop() if len(models) == 1 else None

    def mixed(self, kinds: list[Kind]) -> DependencyUnavailableError:
        models = sorted({self._resolved[k][1] for k in kinds})
        return DependencyUnavailableError(
            "elasticsearch",
            f"the indices of {', '.join(kinds)} were built with different embedding models "
            f"({', '.join(models)}); run `myaiserv index switch-model`",
            retry_after_s=60,
        )
