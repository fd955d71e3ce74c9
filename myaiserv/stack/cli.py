"""`myaiserv stack ...`: run the real services locally, without Docker."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from myaiserv.kit.cli import fail
from myaiserv.stack.config import (
    DEFAULT_STACK_DIR,
    SERVICES,
    PostgresConfig,
    StackConfig,
)
from myaiserv.stack.manager import Stack, write_env_file
from myaiserv.stack.process import StackError

dir_option = click.option(
    "--dir",
    "stack_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STACK_DIR,
    show_default=True,
    envvar="MYAISERV_STACK_DIR",
    help="Folder holding the servers' data, logs and state.",
)


@click.group()
def stack() -> None:
    """Local Elasticsearch, PostgreSQL, Redis and Zipkin on loopback (no Docker needed)."""


@stack.command()
@dir_option
@click.option(
    "--es-nodes", type=click.IntRange(1, 9), default=None, help="Elasticsearch nodes [1]."
)
@click.option("--es-http-port", type=int, default=None, help="First node's HTTP port [19200].")
@click.option("--es-transport-port", type=int, default=None, help="First transport port [19300].")
@click.option("--es-heap", default=None, help="Heap per Elasticsearch node [512m].")
@click.option("--es-version", default=None, help="Elasticsearch version [from stack.json].")
@click.option("--pg-port", type=int, default=None, help="PostgreSQL port [54320].")
@click.option("--redis-port", type=int, default=None, help="Redis port [63790].")
@click.option(
    "--redis-replicas",
    type=click.IntRange(0, 5),
    default=None,
    help="Redis replicas on the next ports, with three Sentinels for failover [0: one Redis].",
)
@click.option(
    "--redis-sentinel-port", type=int, default=None, help="First Sentinel's port [26379]."
)
@click.option(
    "--web",
    "web_instances",
    type=click.IntRange(0, 16),
    default=None,
    help="API instances behind nginx, with an indexer [0: none].",
)
@click.option("--web-port", type=int, default=None, help="nginx's port [18000].")
@click.option("--zipkin-port", type=int, default=None, help="Zipkin's port [19411].")
@click.option(
    "--secure/--no-secure",
    default=None,
    help="Elasticsearch with x-pack security (TLS, a user for MyAIServ) and Redis with a "
    "password, written into the env file [off].",
)
@click.option(
    "--services",
    default=None,
    help=f"Comma-separated subset of {','.join(SERVICES)} [all].",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Dotenv file to write the URLs into (the app's settings read it); '-' for none.",
)
def up(
    stack_dir: Path,
    es_nodes: int | None,
    es_http_port: int | None,
    es_transport_port: int | None,
    es_heap: str | None,
    es_version: str | None,
    pg_port: int | None,
    redis_port: int | None,
    redis_replicas: int | None,
    redis_sentinel_port: int | None,
    web_instances: int | None,
    web_port: int | None,
    zipkin_port: int | None,
    secure: bool | None,
    services: str | None,
    env_file: Path,
) -> None:
    """Start the stack (idempotent) and wait until every service is healthy.

    Settings given here are remembered in the stack folder; omitted ones keep their
    previous (or default) values.
    """
    config = StackConfig.load(stack_dir) or StackConfig(dir=stack_dir)
    es = config.elasticsearch
    config.elasticsearch = replace(
        es,
        version=es_version or es.version,
        nodes=es_nodes or es.nodes,
        http_port=es_http_port or es.http_port,
        transport_port=es_transport_port or es.transport_port,
        heap=es_heap or es.heap,
    )
    if pg_port:
        config.postgres = PostgresConfig(**{**vars(config.postgres), "port": pg_port})
    if redis_port:
        config.redis = replace(config.redis, port=redis_port)
    if redis_replicas is not None:
        config.redis = replace(config.redis, replicas=redis_replicas)
    if redis_sentinel_port:
        config.redis = replace(config.redis, sentinel_port=redis_sentinel_port)
    if zipkin_port:
        config.zipkin = replace(config.zipkin, port=zipkin_port)
    if secure is not None:
        config.secure(secure)
    if web_instances is not None:
        config.web.instances = web_instances
    if web_port:
        config.web.port = web_port
        config.web.first_instance_port = web_port + 1
    if services:
        chosen = tuple(s.strip() for s in services.split(",") if s.strip())
        unknown = set(chosen) - set(SERVICES)
        if unknown:
            raise click.BadParameter(f"unknown service(s): {', '.join(sorted(unknown))}")
        config.services = chosen
    try:
        notes = Stack(config).up()
    except StackError as exc:
        fail(f"stack: {exc}")
    for note in notes:
        click.echo(f"stack: {note}", err=True)
    env = config.env()
    to_file = str(env_file) != "-"
    if to_file:
        write_env_file(env_file, env)
    for key, value in env.items():
        # Passwords go to the file, not the terminal (or a CI log); with '-', stdout is all.
        shown = "***" if to_file and key.endswith("PASSWORD") else value
        click.echo(f"{key}={shown}")
    click.echo(f"stack: up in {stack_dir}" + (f", URLs written to {env_file}" if to_file else ""))


@stack.command()
@dir_option
def down(stack_dir: Path) -> None:
    """Stop every service of the stack; data stays in the folder."""
    if StackConfig.load(stack_dir) is None:
        click.echo(f"stack: nothing in {stack_dir}")
        return
    try:
        Stack.from_dir(stack_dir).down()
    except StackError as exc:
        fail(f"stack: {exc}")
    click.echo("stack: down")


@stack.command()
@dir_option
def status(stack_dir: Path) -> None:
    """Print each service's state as JSON; exit 1 unless all are running."""
    try:
        stk = Stack.from_dir(stack_dir)
    except StackError as exc:
        fail(f"stack: {exc}")
    report = stk.status()
    click.echo(json.dumps(report, indent=2))
    sys.exit(0 if all(s["running"] for s in report.values()) else 1)


@stack.command()
@dir_option
@click.argument("service", type=click.Choice([*SERVICES, "web"]))
def start(stack_dir: Path, service: str) -> None:
    """Start one service of an existing stack."""
    try:
        Stack.from_dir(stack_dir).start(service)
    except StackError as exc:
        fail(f"stack: {exc}")


@stack.command()
@dir_option
@click.argument("service", type=click.Choice([*SERVICES, "web"]))
def stop(stack_dir: Path, service: str) -> None:
    """Stop one service (e.g. to see how the app copes without it)."""
    try:
        Stack.from_dir(stack_dir).stop(service)
    except StackError as exc:
        fail(f"stack: {exc}")
