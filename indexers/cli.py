"""Commands of the pipeline, plugged into `myaiserv` (entry-point group ``myaiserv.commands``)
so the core never imports this package: `myaiserv indexer ...`, `myaiserv index ...`,
`myaiserv ingest ...`. `myaiserv-indexer` is `myaiserv indexer run`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click

from myaiserv.kit.cli import fail, in_transaction, run, with_resources

if TYPE_CHECKING:
    from myaiserv.resources import Resources


async def _ensure_indices(resources: Resources, *, check: bool = True) -> dict[str, str]:
    """Wait for Elasticsearch (it may still be starting), then make sure every kind has
    its template, index and alias, built with this process's spec and analysis settings
    (``check``; with whichever embedding model)."""
    import elasticsearch

    from myaiserv.search.kinds import KINDS

    for attempt in range(60):
        try:
            created = await resources.indices.ensure_all()
            if check:
                for kind in KINDS:
                    # Any model: the indexer embeds with the one each index names.
                    await resources.indices.check_model(kind, any_model=True)
            return created
        except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout):
            if attempt == 59:
                raise
            await asyncio.sleep(2)
    return {}


@click.group("indexer")
def indexer() -> None:
    """The outbox indexer (drains PostgreSQL changes into Elasticsearch)."""


@indexer.command("run")
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics here.")
@click.option("--once", is_flag=True, help="Drain what is due, then exit.")
def indexer_run(metrics_port: int | None, once: bool) -> None:
    """Run an indexer worker until SIGTERM. Several can run side by side."""
    from indexers.worker import Worker
    from myaiserv.search.indices import IndexModelMismatchError
    from myaiserv.tracing.setup import start_tracing

    async def job(resources: Any) -> None:
        try:
            await _ensure_indices(resources)
        except IndexModelMismatchError as exc:
            fail(f"indexer: {exc}")
        port = (
            metrics_port if metrics_port is not None else resources.settings.indexing.metrics_port
        )
        if port and not once:
            from prometheus_client import start_http_server

            try:
                start_http_server(port, addr=resources.settings.indexing.metrics_host)
            except OSError as exc:
                click.echo(
                    f"indexer: metrics port {port} unavailable ({exc}); not served", err=True
                )
        tracing = start_tracing(resources.settings, "indexer")
        try:
            worker = Worker(resources)
            if once:
                done = await worker.drain(idle_exit=True)
                click.echo(f"indexed {done} outbox rows")
            else:
                await worker.run_forever()
        finally:
            tracing.shutdown()

    run(with_resources(job))


@indexer.command("status")
def indexer_status() -> None:
    """The backlog per kind (outbox rows pending and due, the oldest's age, dead letters)
    and the processes draining it (live, or gone within the hour: rows, chunks and tokens
    done, chunks/s and tokens/s over their last minute), as JSON. Reads PostgreSQL only:
    no model, no Elasticsearch."""
    from myaiserv.kit.cli import sessions

    async def job(settings: Any) -> dict[str, Any]:
        from myaiserv.db.heartbeats import HeartbeatRepository

        async with sessions(settings) as sessionmaker, sessionmaker() as session:
            repo = HeartbeatRepository(session)
            backlog = await repo.backlog()
            processes = await repo.processes()
        ttl = settings.indexing.heartbeat_ttl_s
        live = [(p, age) for p, age in processes if age <= ttl]
        return {
            "pending": sum(b.pending for b in backlog.values()),
            "oldest_age_s": max((b.oldest_age_s for b in backlog.values()), default=0.0),
            "dead_letters": sum(b.dead_letters for b in backlog.values()),
            "backlog": {kind: asdict(b) for kind, b in backlog.items()},
            "live_indexers": len(live),
            "chunks_per_s": round(sum(p.chunks_per_s for p, _ in live), 2),
            "tokens_per_s": round(sum(p.tokens_per_s for p, _ in live), 1),
            "indexers": [
                {
                    "name": p.name,
                    "role": p.role,
                    "host": p.host,
                    "pid": p.pid,
                    "alive": age <= ttl,
                    "started_at": p.started_at.isoformat(),
                    "last_beat_s": round(age, 1),
                    "rows": p.rows,
                    "chunks": p.chunks,
                    "tokens": p.tokens,
                    "chunks_per_s": p.chunks_per_s,
                    "tokens_per_s": p.tokens_per_s,
                }
                for p, age in processes
            ],
        }

    click.echo(json.dumps(run(job)))


@indexer.command("requeue")
@click.option(
    "--kind",
    type=click.Choice(["documents", "prompts", "conversations", "messages", "runs"]),
    help="Only dead letters of this kind.",
)
@click.option("--id", "entity_id", type=click.UUID, help="Only those of this record.")
@click.option("--all", "everything", is_flag=True, help="Every dead letter (of --kind).")
def indexer_requeue(kind: str | None, entity_id: UUID | None, everything: bool) -> None:
    """Put dead letters back in the outbox after a fix (their records become pending
    again); prints each one requeued. Exit 1 when --id matches none."""
    from myaiserv.deadletters.repository import DeadLetterQuery, requeue
    from myaiserv.search.kinds import stored_entity_kind

    if (entity_id is None) == (not everything):
        raise click.UsageError("give --id ID or --all")
    query = DeadLetterQuery(kind=stored_entity_kind(kind) if kind else None, entity_id=entity_id)

    async def job(session: Any) -> list[tuple[str, str, str]]:
        rows = await requeue(session, query)
        return [(r.kind, str(r.entity_id), f"{r.reason}: {r.error}") for r in rows]

    requeued = run(in_transaction(job))
    for row_kind, row_id, why in requeued:
        click.echo(f"requeued {row_kind} {row_id} (failed with {why[:200]})")
    if entity_id is not None and not requeued:
        fail(f"indexer: no dead letter for {entity_id}")
    click.echo(f"{len(requeued)} dead letter(s) requeued")


@click.group("index")
def index() -> None:
    """Elasticsearch indices: templates, aliases, reindex."""


@index.command("init")
def index_init() -> None:
    """Create templates, a first index and the alias for every kind (idempotent); a kind
    whose index was built with another spec or analysis settings is reindexed (a new
    index, filled from PostgreSQL, then an atomic alias swap: no downtime), and indices
    built with another embedding model than the configured one are switched to it, every
    kind at once (see `index switch-model`)."""
    from indexers.reindex import reindex, switch_model
    from myaiserv.search.indices import IndexModelMismatchError

    async def job(resources: Any) -> dict[str, str]:
        current = await _ensure_indices(resources, check=False)
        for kind in list(current):
            try:
                await resources.indices.check_model(kind, any_model=True)
            except IndexModelMismatchError as exc:
                click.echo(f"{kind}: {exc}; reindexing", err=True)
                current[kind] = (await reindex(resources, kind)).new_index
        configured = resources.indices.model.model_id
        serving = await resources.indices.serving(list(current))
        if any(serving.model_of(name) != configured for name in serving.index_of.values()):
            click.echo(f"indices built with another model; switching to {configured}", err=True)
            switched = await switch_model(resources, configured)
            current = {kind: r.new_index for kind, r in switched.indices.items()}
        return current

    for kind, name in run(with_resources(job)).items():
        click.echo(f"{kind}: {name}")


@index.command("reindex")
@click.argument("kind", type=click.Choice(["documents", "prompts", "conversations", "runs"]))
@click.option("--keep-old", is_flag=True, help="Keep the previous index (for rollback).")
def index_reindex(kind: str, keep_old: bool) -> None:
    """Build a new index for KIND from PostgreSQL and swap the alias to it atomically,
    while searches and indexers keep working."""
    from indexers.reindex import reindex

    async def job(resources: Any) -> Any:
        await _ensure_indices(resources, check=False)
        return await reindex(resources, kind, keep_old=keep_old)

    result = run(with_resources(job))
    click.echo(
        f"{kind}: {result.entities} entities into {result.new_index} in {result.seconds:.1f}s; "
        f"alias moved from {result.old_index}"
    )


@index.command("switch-model")
@click.argument("model")
@click.option("--keep-old", is_flag=True, help="Keep the previous indices (for rollback).")
def index_switch_model(model: str, keep_old: bool) -> None:
    """Move every kind's index to embedding MODEL with no downtime: new indices built with
    it from PostgreSQL while the old ones serve (indexers write every change to both),
    then every alias swapped in one atomic call. Install MODEL on every machine that
    searches or indexes first (`myaiserv models install`); set MYAISERV_EMBEDDING__MODEL
    to it afterwards, for new deployments and `/v1/embeddings`."""
    from indexers.reindex import ReindexError, switch_model

    async def job(resources: Any) -> Any:
        await _ensure_indices(resources, check=False)
        try:
            return await switch_model(
                resources,
                model,
                keep_old=keep_old,
                progress=lambda kind, n: click.echo(f"{kind}: +{n}", err=True),
            )
        except ReindexError as exc:
            fail(f"index switch-model: {exc}")

    result = run(with_resources(job))
    for kind, built in result.indices.items():
        click.echo(
            f"{kind}: {built.entities} entities into {built.new_index}; "
            f"alias moved from {built.old_index}"
        )
    click.echo(f"every kind on {result.model} in {result.seconds:.1f}s")


@click.command("ingest")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", required=True, help="Tenant name (see `myaiserv tenants create`).")
@click.option(
    "--collection",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A TREC/SMART-format collection folder (e.g. ../shared/data/cisi) instead of PATHS.",
)
@click.option("--batch-size", type=int, default=100, show_default=True)
@click.option(
    "--index",
    "index_mode",
    type=click.Choice(["auto", "here", "none"]),
    default="auto",
    show_default=True,
    help="auto: leave indexing to running indexers and follow them, or index in this "
    "process while none is alive; here: index in this process too; none: only store.",
)
@click.option("--no-index", is_flag=True, help="Only store (the same as --index none).")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Batch loops when indexing in this process [indexing.concurrency].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(
    paths: tuple[Path, ...],
    tenant: str,
    collection: Path | None,
    batch_size: int,
    index_mode: str,
    no_index: bool,
    workers: int | None,
    as_json: bool,
) -> None:
    """Ingest files or folders (text, Markdown, HTML, PDF), or a collection. Beside
    running indexers it stores and follows them; with none alive it indexes itself.
    Progress (documents stored and indexed, chunks/s and tokens/s of every indexer, time
    left, failures) goes to stderr; then a summary."""
    from indexers import ingest as ing

    if not paths and collection is None:
        raise click.UsageError("give PATHS or --collection")
    mode = "none" if no_index else index_mode

    async def job(resources: Any) -> Any:
        await _ensure_indices(resources)
        tenant_id = await ing.tenant_id_for(resources, tenant)
        failed: list[tuple[str, str]] = []
        if collection is not None:
            docs: list[Any] = list(ing.documents_from_collection(collection))
            total, stream = len(docs), iter(docs)
        else:
            files = list(ing.iter_files(paths))
            total, stream = len(files), ing.documents_from_files(files, failed)
        shown = ProgressView(total, quiet=as_json)
        try:
            return await ing.ingest(
                resources,
                tenant_id,
                stream,
                batch_size=batch_size,
                index=mode,  # type: ignore[arg-type]
                workers=workers,
                on_stored=shown.stored,
                on_progress=shown.progress,
                failed=failed,
            )
        finally:
            shown.close()

    summary = run(with_resources(job))
    if as_json:
        click.echo(json.dumps(ing.as_dict(summary)))
    else:
        for line in ing.summary_lines(summary):
            click.echo(line)


class ProgressView:
    """An ingest's progress on stderr: two bars on a terminal (documents stored; indexed,
    with its time left, the indexers' chunks/s and tokens/s, failures and the backlog),
    else a line every ``every_s`` (logs, CI)."""

    def __init__(self, total: int, *, quiet: bool, every_s: float = 15.0) -> None:
        from tqdm import tqdm

        self.lines = not quiet and not sys.stderr.isatty()
        bars = not quiet and not self.lines
        self.total = total
        self.every_s = every_s
        self._last_line = 0.0
        self._stored = tqdm(total=total, desc="stored ", unit="doc", disable=not bars)
        self._indexed = tqdm(total=total, desc="indexed", unit="doc", disable=not bars)

    def stored(self, n: int) -> None:
        self._stored.update(n)

    def progress(self, p: Any) -> None:
        settled = p.indexed + p.index_failed
        self._indexed.update(settled - self._indexed.n)
        where = "here" if p.indexing_here else f"{p.indexers} indexer(s)"
        self._indexed.set_postfix_str(
            f"{p.chunks_per_s:.1f} chunks/s, {p.tokens_per_s:.0f} tokens/s, "
            f"{p.index_failed} failed, backlog {p.backlog}, by {where}",
            refresh=False,
        )
        now = time.monotonic()
        if self.lines and now - self._last_line >= self.every_s:
            self._last_line = now
            click.echo(
                f"ingest: {p.stored}/{self.total} stored, {settled}/{self.total} indexed "
                f"({p.index_failed} failed), {p.chunks_per_s:.1f} chunks/s, "
                f"{p.tokens_per_s:.0f} tokens/s, backlog {p.backlog}, by {where}",
                err=True,
            )

    def close(self) -> None:
        self._stored.close()
        self._indexed.close()


def main() -> None:
    """`myaiserv-indexer`: run one indexer worker."""
    indexer_run.main(args=sys.argv[1:], prog_name="myaiserv-indexer")
