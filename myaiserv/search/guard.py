"""Refuse to query an index that cannot serve this instance."""

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
    """Refuses to query an index built with another embedding model, spec or analysis
    settings (its ``_meta`` says which): the results would be silently wrong. The check is
    remembered for a few seconds per process, so it costs no round trip per search."""

    def __init__(self, indices: IndexManager) -> None:
        self.indices = indices
        self._checked: dict[str, float] = {}

    def due(self, kinds: list[Kind]) -> list[Kind]:
        """The kinds whose check is due (none: ``check`` makes no round trip)."""
        now = time.monotonic()
        return [k for k in kinds if now - self._checked.get(k, float("-inf")) >= GUARD_TTL_S]

    async def check(self, es: AsyncElasticsearch, kinds: list[Kind]) -> None:
        due = self.due(kinds)
        if not due:
            return
        now = time.monotonic()
        indices = self.indices
        aliases = ",".join(indices.alias(k) for k in due)
        # Elasticsearch's errors (the indices missing: a 404) are the store's to translate.
        found = await es.indices.get(index=aliases, filter_path="*.aliases,*.mappings._meta")
        for name, body in found.body.items():
            meta = body.get("mappings", {}).get("_meta", {})
            kind = meta.get("kind")
            if kind not in due:
                continue
            reason = indices.mismatch(kind, name, meta)
            if reason:
                log.error("index refused", index=name, reason=reason)
                raise DependencyUnavailableError("elasticsearch", reason, retry_after_s=60)
        for kind in due:
            self._checked[kind] = now
