"""Command definitions. Errors a user can fix exit with status 2 (bad usage) and a message naming the argument;
a demo that does not finish exits with status 1."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from conveyor._engine.builder import Builder
from conveyor.cli._db import db
from conveyor.cli._demo import DEMO_ENTRYPOINT, run_demo
from conveyor.cli._load import load_builder, load_failure
from conveyor.cli._runs import runs
from conveyor.cli._ui import ui
from conveyor.cli._worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="conveyor")
def cli() -> None:
    """conveyor: durable, event-driven workflows for Python."""


def _load(entrypoint: str, paths: tuple[str, ...]) -> Builder[Any, Any]:
    try:
        return load_builder(entrypoint, paths)
    except click.BadParameter as e:
        # Name the argument in the message ("Invalid value for 'ENTRYPOINT': ...").
        e.param_hint = e.param_hint or "'ENTRYPOINT'"
        raise
    except Exception as e:
        raise click.BadParameter(f"{entrypoint}: {load_failure(e)}", param_hint="'ENTRYPOINT'") from None


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
    builder = _load(entrypoint, paths)
    ok = asyncio.run(run_demo(builder, entrypoint, runs=runs, timeout=timeout, debug=debug, out=click.echo))
    if not ok:
        sys.exit(1)


@cli.command()
@click.argument("entrypoint")
@click.option("--path", "paths", multiple=True, default=(".",), show_default=True, help="Import path (repeatable).")
@click.option("--direction", type=click.Choice(["LR", "TB", "RL", "BT"]), default="LR", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["mermaid", "json"]),
    default="mermaid",
    show_default=True,
    help="json: statuses and transitions for scripts (the mermaid text included).",
)
def graph(entrypoint: str, paths: tuple[str, ...], direction: str, output: str) -> None:
    """Print the workflow's state diagram (mermaid)."""
    from conveyor._engine.run_data import workflow_data
    from conveyor._engine.visualise import mermaid

    spec = _load(entrypoint, paths).spec()
    if output == "json":
        # The shape of each workflow in the UI's /api/workflows.
        click.echo(json.dumps(workflow_data(spec, direction), indent=2))
    else:
        click.echo(mermaid(spec, direction), nl=False)


cli.add_command(db)
cli.add_command(worker)
cli.add_command(runs)
cli.add_command(ui)


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="conveyor")
