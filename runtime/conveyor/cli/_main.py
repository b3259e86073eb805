"""Command definitions. Errors a user can fix exit with status 2 (bad usage) and a message naming the argument;
a demo that does not finish exits with status 1."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from conveyor.cli._db import db
from conveyor.cli._demo import DEMO_ENTRYPOINT, run_demo
from conveyor.cli._graph import graph
from conveyor.cli._load import load
from conveyor.cli._runs import runs
from conveyor.cli._ui import ui
from conveyor.cli._worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="conveyor")
def cli() -> None:
    """conveyor: durable, event-driven workflows for Python."""


@cli.command()
@click.argument("entrypoint", default=DEMO_ENTRYPOINT)
@click.option(
    "--path",
    "paths",
    multiple=True,
    help="Directory to import the entrypoint from (repeatable; the shipped demo needs none).",
)
@click.option("--runs", type=click.IntRange(1, 10_000), default=None, help="How many runs (default: the samples).")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True)
@click.option("--debug", is_flag=True, help="Log every decision the engine takes.")
def demo(entrypoint: str, paths: tuple[str, ...], runs: int | None, timeout: float, debug: bool) -> None:
    """Run a workflow on the in-memory adapters and show each run moving through its statuses."""
    builder = load(entrypoint, paths)
    ok = asyncio.run(run_demo(builder, entrypoint, runs=runs, timeout=timeout, debug=debug, out=click.echo))
    if not ok:
        sys.exit(1)


cli.add_command(graph)
cli.add_command(db)
cli.add_command(worker)
cli.add_command(runs)
cli.add_command(ui)


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="conveyor")
