"""The `myaiserv` command line: serve, stack, db."""

from __future__ import annotations

import click

from myaiserv.stack.cli import stack


@click.group()
def main() -> None:
    """MyAIServ: search-and-RAG backend for LLM applications."""


main.add_command(stack)

if __name__ == "__main__":
    main()
