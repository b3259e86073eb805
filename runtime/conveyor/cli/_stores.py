"""Opening the record store the CLI's run tools (`conveyor runs ...`, `conveyor ui`) read: one `--dsn` option and
one way of turning an unreachable or misconfigured database into a message and exit status 1; and, for the
processes that run in pods (`conveyor ui --wait-for-store`, `conveyor worker --wait-for-store`), one way of
waiting for a database that is not up or not migrated yet instead of exiting (`open_when_ready`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click

from conveyor._core.ports import RecordStore
from conveyor._engine.spec import WorkflowSpec
from conveyor.cli._load import load_builder, load_failure
from conveyor.errors import InvalidInput, SchemaNotMigrated, ServiceUnavailable

F = TypeVar("F", bound=Callable[..., Any])

STORE_RETRY_SECONDS = 2.0  # between attempts to open the store while waiting for it
# While waiting, a new reason is said at once and the same one again at most this often, with the attempts that
# failed meanwhile: a pod that waits an hour for its database logs ~120 lines, not one per attempt (1,800).
WAIT_LOG_INTERVAL = 30.0
# What a database that is starting up says, and is worth waiting through: the server is not reachable yet (not
# started, its name not resolvable yet, its password not set yet), or it has no current schema yet (`conveyor db
# migrate` may run after the processes start, as a Job or a Helm hook).
STARTING_UP: tuple[type[Exception], ...] = (ServiceUnavailable, SchemaNotMigrated)


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


def _quiet(why: str) -> None:
    pass


async def open_when_ready(
    store: RecordStore,
    say: Callable[[int, str], None],
    *,
    waiting: Callable[[str], None] = _quiet,
    patient_with: tuple[type[Exception], ...] = STARTING_UP,
    retry: float = STORE_RETRY_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Open `store`, trying again every `retry` seconds for as long as opening fails with one of `patient_with`;
    any other error is raised at once. `waiting(why)` hears every failed attempt (a /readyz reason); `say(level,
    line)` gets the log lines: a new reason at once, the same one at most every WAIT_LOG_INTERVAL seconds, and, after
    a wait, that the store is open. Cancelled, it leaves the store as it was: not open."""
    said, said_at, unsaid = "", 0.0, 0
    while True:
        try:
            await store.open()
        except patient_with as e:
            why = str(e) if isinstance(e, STARTING_UP) else f"{type(e).__name__}: {e}"
            waiting(why)
            now = monotonic()
            if why == said and now - said_at < WAIT_LOG_INTERVAL:
                unsaid += 1
            else:
                since = f" (still: {unsaid + 1} more attempts in {now - said_at:.0f} s)" if why == said else ""
                say(logging.WARNING, f"waiting for the record store: {why}{since}")
                said, said_at, unsaid = why, now, 0
            await asyncio.sleep(retry)
            continue
        if said:
            say(logging.INFO, "the record store is open")
        return
