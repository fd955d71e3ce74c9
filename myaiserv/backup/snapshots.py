"""Elasticsearch's side of backups: a shared-filesystem snapshot repository, snapshots of
our indices with their aliases, restores, and the entities a restored index holds.

Driver errors become ``BackupError``s that say what to fix (a missing ``path.repo``, a
folder the nodes cannot write).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import elasticsearch
from elasticsearch import AsyncElasticsearch

from myaiserv.backup.errors import BackupError
from myaiserv.search.kinds import KINDS, EntityKind, Kind

PATH_REPO_HELP = (
    "every Elasticsearch node needs the folder in its path.repo setting: the local stack "
    "sets it (`myaiserv stack up` after updating); in production mount one shared folder "
    "on every node (docker-compose.yml: the `snapshots` volume at /snapshots, "
    "path.repo=/snapshots) or set MYAISERV_BACKUP__LOCATION to a folder inside path.repo"
)

# Outbox kind -> (index kind, the field naming the entity, what else selects its entries).
ENTITY_FIELDS: dict[EntityKind, tuple[Kind, str, dict[str, Any] | None]] = {
    "documents": ("documents", "document_id", None),
    "prompts": ("prompts", "prompt_id", None),
    "conversations": ("conversations", "conversation_id", {"term": {"doc_type": "conversation"}}),
    "messages": ("conversations", "message_id", {"term": {"doc_type": "message"}}),
    "runs": ("runs", "run_id", None),
}


def entity_versions_body(
    id_field: str, doc_filter: dict[str, Any] | None, after: dict[str, Any] | None, size: int
) -> dict[str, Any]:
    """One page of (entity id, tenant id) -> highest indexed version: a composite
    aggregation, so a document's many chunks count once."""
    composite: dict[str, Any] = {
        "size": size,
        "sources": [
            {"id": {"terms": {"field": id_field}}},
            {"tenant": {"terms": {"field": "tenant_id"}}},
        ],
    }
    if after:
        composite["after"] = after
    return {
        "size": 0,
        "query": {"bool": {"filter": [doc_filter]}} if doc_filter else {"match_all": {}},
        "aggs": {
            "entities": {
                "composite": composite,
                "aggs": {"version": {"max": {"field": "version"}}},
            }
        },
    }


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reason(exc: elasticsearch.ApiError) -> tuple[str, str]:
    error = _object(_object(exc.body).get("error"))
    cause = _object(error.get("caused_by"))
    etype = str(error.get("type") or exc.message)
    reason = str(cause.get("reason") or error.get("reason") or exc.message)
    return etype, reason


class SnapshotStore:
    def __init__(self, es: AsyncElasticsearch, *, timeout_s: float) -> None:
        self.es = es
        self.timeout_s = timeout_s
        self.slow = es.options(request_timeout=timeout_s)

    @contextlib.asynccontextmanager
    async def _errors(self, doing: str) -> AsyncIterator[None]:
        try:
            yield
        except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
            raise BackupError(f"{doing}: Elasticsearch is unreachable ({exc})") from None
        except elasticsearch.ApiError as exc:
            etype, reason = _reason(exc)
            if "path.repo" in reason:
                raise BackupError(f"{doing}: {reason}; {PATH_REPO_HELP}") from None
            if etype == "repository_verification_exception":
                raise BackupError(
                    f"{doing}: the nodes cannot use the repository folder ({reason}); it must "
                    "be one shared folder that every node mounts and the Elasticsearch user "
                    "can write"
                ) from None
            raise BackupError(f"{doing}: {etype}: {reason}") from None

    async def version(self) -> str:
        """The nodes' version(s) (from _nodes: the local distribution has no ``GET /``)."""
        async with self._errors("asking Elasticsearch its version"):
            resp = await self.es.nodes.info(filter_path="nodes.*.version")
        nodes = (resp.body or {}).get("nodes", {}).values()
        return ",".join(sorted({str(n.get("version")) for n in nodes}))

    async def repo_roots(self) -> list[str]:
        """The folders every node lists in ``path.repo``."""
        async with self._errors("reading the nodes' path.repo"):
            resp = await self.es.nodes.info(
                metric="settings", filter_path="nodes.*.settings.path.repo"
            )
        nodes = (resp.body or {}).get("nodes", {})
        common: list[str] | None = None
        for node in nodes.values():
            repo = node.get("settings", {}).get("path", {}).get("repo") or []
            paths = [repo] if isinstance(repo, str) else list(repo)
            common = paths if common is None else [p for p in common if p in paths]
        if not nodes or not common:
            raise BackupError(f"Elasticsearch has no snapshot folder (path.repo): {PATH_REPO_HELP}")
        return common

    async def location_root(self, configured: str | None) -> str:
        return (configured or (await self.repo_roots())[0]).rstrip("/")

    async def register(self, name: str, location: str, *, readonly: bool = False) -> None:
        async with self._errors(f"registering snapshot repository {name} at {location}"):
            await self.slow.snapshot.create_repository(
                name=name,
                repository={"type": "fs", "settings": {"location": location, "readonly": readonly}},
            )

    async def location_of(self, name: str) -> str | None:
        """Where a registered repository lives (None: not registered here)."""
        try:
            resp = await self.es.snapshot.get_repository(name=name)
        except elasticsearch.NotFoundError:
            return None
        except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
            raise BackupError(f"Elasticsearch is unreachable ({exc})") from None
        location = resp.body.get(name, {}).get("settings", {}).get("location")
        return None if location is None else str(location)

    async def unregister(self, name: str) -> None:
        with contextlib.suppress(elasticsearch.NotFoundError):
            await self.es.snapshot.delete_repository(name=name)

    async def snapshot_info(self, repository: str, name: str) -> dict[str, Any] | None:
        try:
            resp = await self.es.snapshot.get(repository=repository, snapshot=name)
        except elasticsearch.NotFoundError:
            return None
        except elasticsearch.ApiError as exc:
            etype, reason = _reason(exc)
            raise BackupError(f"reading snapshot {repository}:{name}: {etype}: {reason}") from None
        snapshots = resp.body.get("snapshots") or []
        return snapshots[0] if snapshots else None

    # -- our indices ---------------------------------------------------------------------

    async def aliased_indices(self, prefix: str) -> dict[str, list[str]]:
        """Concrete indices behind our aliases (``{prefix}-{kind}``), with their aliases."""
        out: dict[str, list[str]] = {}
        async with self._errors("listing our aliases"):
            for kind in KINDS:
                alias = f"{prefix}-{kind}"
                try:
                    resp = await self.es.indices.get_alias(name=alias)
                except elasticsearch.NotFoundError:
                    continue
                for index in resp.body:
                    out.setdefault(index, []).append(alias)
        return out

    async def prefixed_indices(self, prefix: str) -> list[str]:
        """Every concrete index our specs name (``{prefix}-{kind}-v*``), open or closed."""
        names: set[str] = set()
        async with self._errors("listing our indices"):
            for kind in KINDS:
                resp = await self.es.indices.get(
                    index=f"{prefix}-{kind}-v*", expand_wildcards="all", allow_no_indices=True
                )
                names |= set(resp.body)
        return sorted(names)

    async def doc_counts(self, indices: list[str]) -> dict[str, int]:
        if not indices:
            return {}
        async with self._errors("counting documents"):
            await self.es.indices.refresh(index=",".join(indices))
            return {name: int((await self.es.count(index=name))["count"]) for name in indices}

    async def documents_in(self, indices: list[str]) -> int:
        """Documents these indices hold (a closed one counts as holding some)."""
        if not indices:
            return 0
        async with self._errors("counting documents"):
            resp = await self.es.cat.indices(
                index=",".join(indices), h="index,status,docs.count", format="json"
            )
        rows = cast(list[dict[str, Any]], resp.body)
        return sum(
            int(row.get("docs.count") or 0) if row.get("status") == "open" else 1 for row in rows
        )

    async def metas(self, indices: list[str]) -> dict[str, dict[str, Any]]:
        if not indices:
            return {}
        async with self._errors("reading index mappings"):
            resp = await self.es.indices.get_mapping(index=",".join(indices))
        return {name: body["mappings"].get("_meta", {}) for name, body in resp.body.items()}

    # -- snapshot and restore ------------------------------------------------------------

    async def create(self, repository: str, name: str, indices: list[str]) -> dict[str, Any]:
        async with self._errors(f"taking snapshot {name}"):
            resp = await self.slow.snapshot.create(
                repository=repository,
                snapshot=name,
                indices=",".join(indices),
                include_global_state=False,
                partial=False,
                wait_for_completion=True,
                metadata={"taken_by": "myaiserv backup"},
            )
        info: dict[str, Any] = resp.body["snapshot"]
        if info.get("state") != "SUCCESS":
            raise BackupError(
                f"snapshot {name} ended {info.get('state')}: {info.get('failures')}; "
                "try the backup again"
            )
        return info

    async def delete_indices(self, names: list[str]) -> None:
        if names:
            async with self._errors("deleting indices the restore replaces"):
                await self.es.indices.delete(index=",".join(names), expand_wildcards="all")

    async def restore(
        self, repository: str, name: str, indices: list[str], *, replicas: int
    ) -> None:
        async with self._errors(f"restoring snapshot {name}"):
            await self.slow.snapshot.restore(
                repository=repository,
                snapshot=name,
                indices=",".join(indices),
                include_aliases=True,
                include_global_state=False,
                index_settings={"index.number_of_replicas": replicas},
                wait_for_completion=True,
            )
            health = await self.slow.cluster.health(
                index=",".join(indices),
                wait_for_status="yellow",
                timeout=f"{int(self.timeout_s)}s",
            )
        if health.body.get("timed_out"):
            raise BackupError(f"the restored indices are not ready: {health.body}")

    async def entity_versions(
        self, alias: str, id_field: str, doc_filter: dict[str, Any] | None, *, size: int = 1000
    ) -> AsyncIterator[list[tuple[str, str, int]]]:
        """Pages of (entity id, tenant id, highest version) in the index."""
        after = None
        while True:
            body = entity_versions_body(id_field, doc_filter, after, size)
            async with self._errors(f"listing the entities in {alias}"):
                resp = await self.es.search(index=alias, **body)
            agg = resp["aggregations"]["entities"]
            page = [
                (b["key"]["id"], b["key"]["tenant"], int(b["version"]["value"] or 1))
                for b in agg["buckets"]
            ]
            if page:
                yield page
            after = agg.get("after_key")
            if not after or len(agg["buckets"]) < size:
                return
