"""`conveyor ui`: serve the web UI over a Postgres record store (or, with `--demo`, over the shipped order workflow
running on the in-memory adapters, so a newcomer can look at it with no database) until Ctrl-C or SIGTERM.

Typed at a terminal, a database that cannot be reached is an error at once (exit 1). In a pod (`--wait-for-store`,
which the Helm chart passes) the UI serves from the start and keeps trying to open the store: /readyz says 503, and
pages say the store is unavailable, until it opens, instead of the pod crash-looping while the database starts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import click

from conveyor._core.ports import RecordStore
from conveyor._engine.spec import WorkflowSpec
from conveyor.cli._demo import DEMO_ENTRYPOINT
from conveyor.cli._stores import (
    STORE_RETRY_SECONDS,
    load_specs,
    open_when_ready,
    postgres_store,
    record_store,
    workflows_option,
)
from conveyor.errors import InvalidInput

DEMO_RUNS = 60


@click.command()
@click.option(
    "--dsn",
    envvar="CONVEYOR_PG_DSN",
    show_envvar=True,
    default=None,
    help="PostgreSQL DSN of the record store (required unless --demo).",
)
@workflows_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free).")
@click.option(
    "--allow-actions",
    is_flag=True,
    help="Enable the pause, resume, cancel and delete buttons and API (off by default; CSRF-checked).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A host name the UI may be reached by, besides IP addresses and localhost (repeatable; * for any). "
    "Other names are refused, against DNS rebinding.",
)
@click.option(
    "--wait-for-store",
    is_flag=True,
    help=f"Serve even while the database cannot be reached or is not migrated yet, trying again every "
    f"{STORE_RETRY_SECONDS:g} s (/readyz answers 503 meanwhile). For pods; the Helm chart sets it.",
)
@click.option(
    "--demo",
    is_flag=True,
    help=f"Run the example order workflow on in-memory adapters ({DEMO_RUNS} runs) and serve the UI over it.",
)
def ui(
    dsn: str | None,
    entrypoints: tuple[str, ...],
    paths: tuple[str, ...],
    host: str,
    port: int,
    allow_actions: bool,
    allowed_hosts: tuple[str, ...],
    wait_for_store: bool,
    demo: bool,
) -> None:
    """Serve the web UI: runs with filters, a run's object, history and graph, and /metrics."""
    try:
        from conveyor.ui import make_app
        from conveyor.ui._csrf import host_names
    except ImportError as e:
        raise click.UsageError(f"the ui extra is not installed ({e}): pip install 'conveyor[ui]'") from None
    # Every argument is checked before anything opens: a usage error is exit 2 whether or not the store is up.
    for name in allowed_hosts:
        try:
            host_names([name])
        except InvalidInput as e:
            raise click.BadParameter(f"{name!r}: expected {e.expected}", param_hint="'--allowed-host'") from None
    specs = load_specs(entrypoints, paths)
    if demo:
        # $CONVEYOR_PG_DSN may well be set in the shell; only an explicit --dsn contradicts --demo.
        if click.get_current_context().get_parameter_source("dsn") is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("--demo serves in-memory runs: it takes no --dsn")
        opened: AbstractAsyncContextManager[tuple[RecordStore, dict[str, WorkflowSpec[Any, Any]]]] = _demo(specs)
    elif dsn is None:
        raise click.UsageError("--dsn (or $CONVEYOR_PG_DSN) is required unless --demo")
    elif wait_for_store:
        opened = _postgres_when_reachable(dsn, specs)
    else:
        opened = _postgres(dsn, specs)

    async def serve() -> None:
        async with opened as (store, known):
            app = make_app(store, workflows=known, allow_actions=allow_actions, allowed_hosts=allowed_hosts)
            await _serve(app, host, port, allow_actions, click.echo)

    asyncio.run(serve())


@asynccontextmanager
async def _postgres(
    dsn: str, specs: dict[str, WorkflowSpec[Any, Any]]
) -> AsyncIterator[tuple[RecordStore, dict[str, WorkflowSpec[Any, Any]]]]:
    async with record_store(dsn) as store:
        yield store, specs


@asynccontextmanager
async def _postgres_when_reachable(
    dsn: str, specs: dict[str, WorkflowSpec[Any, Any]]
) -> AsyncIterator[tuple[RecordStore, dict[str, WorkflowSpec[Any, Any]]]]:
    """The store at once, opened in the background as soon as the database answers with a current schema."""
    store = postgres_store(dsn)
    opened = asyncio.Event()

    def say(level: int, line: str) -> None:
        click.echo(f"conveyor ui: {line}", err=True)

    async def keep_opening() -> None:
        # Whatever the reason (a grant or a password fixed later too), it may pass: the UI keeps trying.
        await open_when_ready(store, say, patient_with=(Exception,))
        opened.set()

    opening = asyncio.ensure_future(keep_opening())
    try:
        yield store, specs
    finally:
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opening
        if opened.is_set():
            await store.close()


@asynccontextmanager
async def _demo(
    specs: dict[str, WorkflowSpec[Any, Any]],
) -> AsyncIterator[tuple[RecordStore, dict[str, WorkflowSpec[Any, Any]]]]:
    import importlib

    from conveyor.adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryStreamer, MemoryTimeoutStore
    from conveyor.cli._load import load_builder

    builder = load_builder(DEMO_ENTRYPOINT, ())
    samples: list[Any] = list(importlib.import_module(DEMO_ENTRYPOINT.partition(":")[0]).sample_orders())
    store = MemoryRecordStore()
    wf = builder.build(MemoryStreamer(), store, MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())
    async with wf:
        for i in range(DEMO_RUNS):
            order = samples[i % len(samples)].model_copy(update={"id": f"order-{i + 1}"})
            await wf.trigger(order.id, initial_value=order)
        yield store, {**specs, wf.name: wf.spec}


async def _serve(app: Any, host: str, port: int, allow_actions: bool, out: Callable[[str], None]) -> None:
    from aiohttp import web

    from conveyor.ui import UIRunner

    runner = UIRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:
            raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                shown = f"[{address[0]}]" if ":" in str(address[0]) else address[0]
                out(f"conveyor ui: http://{shown}:{address[1]}/ (actions {'on' if allow_actions else 'off'})")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        await runner.cleanup()
