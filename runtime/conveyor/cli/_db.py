"""`conveyor db migrate`: the only way conveyor's Postgres schema is created or changed."""

from __future__ import annotations

import asyncio
import json

import click

from conveyor.errors import ServiceUnavailable


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.option("--dsn", envvar="CONVEYOR_PG_DSN", required=True, help="PostgreSQL DSN (default: $CONVEYOR_PG_DSN).")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True, help="json: for scripts."
)
def migrate(dsn: str, output: str) -> None:
    """Create or upgrade conveyor's tables (idempotent; safe to run from several places at once). Exits 1 if the
    database cannot be reached, 2 on bad usage."""
    try:
        from conveyor.adapters.postgres import migrate as apply
    except ImportError:
        raise click.UsageError("the postgres extra is not installed: pip install 'conveyor[postgres]'") from None
    try:
        applied = asyncio.run(apply(dsn))
    except ServiceUnavailable as e:
        # The service failed, not the usage: exit 1 like every other command that cannot reach its database.
        raise click.ClickException(str(e)) from None
    if output == "json":
        click.echo(json.dumps({"applied": applied}))
    elif applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("schema up to date")
