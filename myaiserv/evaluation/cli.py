"""`myaiserv eval`: relevance of bm25, vector and hybrid search (both fusions) on a
TREC-style collection, measured through the HTTP API, with the configured embedding model
or others (``--model``)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click

DEFAULT_COLLECTION = Path(os.environ.get("MYAISERV_CISI", "../shared/data/cisi"))


@click.command("eval")
@click.option(
    "--collection",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=DEFAULT_COLLECTION,
    show_default=True,
    help="A TREC/SMART-format collection folder (documents, queries, judgments).",
)
@click.option("--url", help="A running API (default: start one, and an indexer, locally).")
@click.option("--api-key", envvar="MYAISERV_API_KEY", help="Key for --url (read and write).")
@click.option("--tenant", default=None, help="Tenant for a local run (default: eval-<name>).")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["bm25", "vector", "hybrid", "hybrid-rrf"]),
    help="hybrid: the deployment's default fusion (linear unless set otherwise); "
    "hybrid-rrf: reciprocal rank fusion (default: all).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Evaluate with this embedding model (repeatable): a deployment of its own on the "
    "same servers (database, index prefix and Redis namespace named after the model). "
    "Default: the configured model, in the configured deployment.",
)
@click.option("--depth", type=int, default=1000, show_default=True, help="Documents ranked.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Also write JSON.")
def eval_command(
    collection: Path,
    url: str | None,
    api_key: str | None,
    tenant: str | None,
    modes: tuple[str, ...],
    models: tuple[str, ...],
    depth: int,
    json_out: Path | None,
) -> None:
    """Store the collection through the API (deduplicated: a second run stores nothing),
    wait until it is indexed, run every judged query in each mode and print nDCG@10, MAP
    and Recall@100."""
    from myaiserv.datasets.trec import load_collection
    from myaiserv.evaluation.runner import MODES, table

    if url and not api_key:
        raise click.UsageError("--url needs --api-key (or MYAISERV_API_KEY)")
    if url and models:
        raise click.UsageError("--model starts deployments of its own: leave out --url")
    coll = load_collection(collection)
    if not models:
        result = asyncio.run(
            run_eval(
                coll, url=url, api_key=api_key, tenant=tenant, modes=modes or MODES, depth=depth
            )
        )
        click.echo(table(result))
        if json_out:
            json_out.write_text(json.dumps(as_dict(result), indent=2) + "\n")
        return
    from myaiserv.evaluation.harness import private_deployment
    from myaiserv.kit.cli import load_settings

    by_model = {}
    for model in models:
        settings, env = private_deployment(load_settings(), model)
        result = asyncio.run(
            run_eval(
                coll, url=None, api_key=None, tenant=tenant, modes=modes or MODES,
                depth=depth, settings=settings, env=env, private=True,
            )
        )  # fmt: skip
        click.echo(f"embedding model {model}\n{table(result)}\n")
        by_model[model] = as_dict(result)
    if json_out:
        json_out.write_text(json.dumps(by_model, indent=2) + "\n")


async def run_eval(
    coll: Any,
    *,
    url: str | None,
    api_key: str | None,
    tenant: str | None,
    modes: tuple[str, ...],
    depth: int,
    settings: Any = None,
    env: dict[str, str] | None = None,
    private: bool = False,
) -> Any:
    """Against ``url``, or a local API started with ``settings`` (default: from the
    environment) and ``env`` (variables for the child processes), with an indexer of its
    own unless one is running already. ``private``: ``settings`` name a deployment of the
    run's own (``harness.private_deployment``), whose database is created and migrated
    here and always gets its own indexer."""
    from myaiserv.evaluation.runner import EvalClient, evaluate

    async def against(base_url: str, key: str) -> Any:
        client = EvalClient(base_url, key)
        try:
            expected = await client.store(coll)
            await client.wait_indexed(coll, expected)
            return await evaluate(client, coll, modes=modes, depth=depth)
        finally:
            await client.close()

    if url:
        return await against(url, api_key or "")

    from myaiserv.evaluation.harness import indexers_alive, local_api, tenant_key
    from myaiserv.kit.cli import load_settings, sessions

    settings = settings or load_settings()
    if private:
        from myaiserv.db.migrate import prepare_database

        await prepare_database(settings)
    async with sessions(settings) as sessionmaker:
        _, key = await tenant_key(sessionmaker, tenant or f"eval-{coll.name}")
        running = not private and await indexers_alive(
            sessionmaker, settings.indexing.heartbeat_ttl_s
        )
    async with local_api(env or {}, indexer=not running) as (base_url, _):
        return await against(base_url, key)


def as_dict(result: Any) -> dict[str, Any]:
    return {
        "collection": result.collection,
        "queries": result.queries,
        "depth": result.depth,
        "seconds": round(result.seconds, 1),
        **result.scores,
    }
