"""`conveyor db migrate`: the only way conveyor's Postgres schema is created or changed."""

from __future__ import annotations

import asyncio

import click

from conveyor.errors import ServiceUnavailable


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.option("--dsn", envvar="CONVEYOR_PG_DSN", required=True, help="PostgreSQL DSN (default: $CONVEYOR_PG_DSN).")
def migrate(dsn: str) -> None:
    """Create or upgrade conveyor's tables (idempotent; safe to run from several places at once)."""
    try:
        from conveyor.adapters.postgres import migrate as apply
    except ImportError:
        raise click.UsageError("the postgres extra is not installed: pip install 'conveyor[postgres]'") from None
    try:
        applied = asyncio.run(apply(dsn))
    except ServiceUnavailable as e:
        raise click.UsageError(str(e)) from None
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("schema up to date")
