"""Opening the record store the CLI's run tools (`conveyor runs ...`, `conveyor ui`) read: one `--dsn` option and
one way of turning an unreachable or misconfigured database into a message and exit status 1."""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click

from conveyor._core.ports import RecordStore
from conveyor._engine.spec import WorkflowSpec
from conveyor.cli._load import load_builder
from conveyor.errors import InvalidInput, SchemaNotMigrated, ServiceUnavailable

F = TypeVar("F", bound=Callable[..., Any])

_CONVEYOR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIB = os.path.dirname(os.path.abspath(importlib.__file__ or ""))


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
            raise click.BadParameter(f"{entrypoint}: {_failure(e)}", param_hint="'--entrypoint'") from None
        specs[spec.name] = spec
    return specs


def _failure(error: Exception) -> str:
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg} ({error.filename}, line {error.lineno})"
    message = " ".join(str(error).split())
    # Where in the user's code: the last frame neither conveyor's nor importlib's (an invalid graph is raised by
    # the builder, but the line to fix is the user's add_step).
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith((_CONVEYOR, "<", _LIB))]
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {message}{where}"


@asynccontextmanager
async def record_store(dsn: str) -> AsyncIterator[RecordStore]:
    """The Postgres record store at `dsn`, open for the duration. A missing extra is a usage error (exit 2); an
    unreachable or unmigrated database exits 1 with its message."""
    try:
        from conveyor.adapters.postgres import PostgresRecordStore
    except ImportError:
        raise click.UsageError("the postgres extra is not installed: pip install 'conveyor[postgres]'") from None
    try:
        store = PostgresRecordStore(dsn)
    except InvalidInput as e:
        raise click.BadParameter(str(e), param_hint="--dsn") from None
    try:
        await store.open()
    except (ServiceUnavailable, SchemaNotMigrated) as e:
        raise click.ClickException(str(e)) from None
    try:
        yield store
    finally:
        await store.close()
