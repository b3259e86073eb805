"""Opening the record store the CLI's run tools (`conveyor runs ...`, `conveyor ui`) read: one `--dsn` option and
one way of turning an unreachable or misconfigured database into a message and exit status 1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click

from conveyor._core.ports import RecordStore
from conveyor._engine.spec import WorkflowSpec
from conveyor.cli._load import load_builder, load_failure
from conveyor.errors import InvalidInput, SchemaNotMigrated, ServiceUnavailable

F = TypeVar("F", bound=Callable[..., Any])


def dsn_option(fn: F) -> F:
    """`--dsn` (or $CONVEYOR_PG_DSN): where the runs are stored."""
    return click.option(
        "--dsn",
        envvar="CONVEYOR_PG_DSN",
        show_envvar=True,
        required=True,
        help="PostgreSQL DSN of the record store.",
    )(fn)


def workflows_option(fn: F) -> F:
    """`--entrypoint module:attribute` (repeatable) and `--path`: the workflows whose status names and graphs to
    show; without them statuses are shown as numbers."""
    fn = click.option(
        "--path", "paths", multiple=True, default=(".",), show_default=True, help="Import path (repeatable)."
    )(fn)
    return click.option(
        "--entrypoint",
        "entrypoints",
        multiple=True,
        metavar="MODULE:ATTR",
        help="A workflow's Builder, for status names and its graph (repeatable).",
    )(fn)


def load_specs(entrypoints: tuple[str, ...], paths: tuple[str, ...]) -> dict[str, WorkflowSpec[Any, Any]]:
    """The workflows named by `--entrypoint`, by workflow name; a bad one is a usage error naming the option. The
    user's code failing as it loads (an exception at import, a syntax error, an invalid graph) is told in one line
    with where it failed, not a traceback through conveyor."""
    specs: dict[str, WorkflowSpec[Any, Any]] = {}
    for entrypoint in entrypoints:
        try:
            spec = load_builder(entrypoint, paths).spec()
        except click.BadParameter as e:
            e.param_hint = e.param_hint or "'--entrypoint'"
            raise
        except Exception as e:
            raise click.BadParameter(f"{entrypoint}: {load_failure(e)}", param_hint="'--entrypoint'") from None
        specs[spec.name] = spec
    return specs


def postgres_store(dsn: str) -> RecordStore:
    """The Postgres record store at `dsn`, not opened yet. A missing extra or a malformed DSN is a usage error."""
    try:
        from conveyor.adapters.postgres import PostgresRecordStore
    except ImportError:
        raise click.UsageError("the postgres extra is not installed: pip install 'conveyor[postgres]'") from None
    try:
        return PostgresRecordStore(dsn)
    except InvalidInput as e:
        raise click.BadParameter(str(e), param_hint="--dsn") from None


@asynccontextmanager
async def record_store(dsn: str) -> AsyncIterator[RecordStore]:
    """The Postgres record store at `dsn`, open for the duration. A missing extra is a usage error (exit 2); an
    unreachable or unmigrated database exits 1 with its message."""
    store = postgres_store(dsn)
    try:
        await store.open()
    except (ServiceUnavailable, SchemaNotMigrated) as e:
        raise click.ClickException(str(e)) from None
    try:
        yield store
    finally:
        await store.close()
