"""`conveyor runs ...`: finding, reading and steering runs in a Postgres record store from a shell, with no workflow
running. State changes go through `Client.change_state`, the one path every change of a run takes, so a worker acting on
a run at the same moment makes the change retry instead of being overwritten.

Tables and progress bars are rich's: click has progress bars but no tables, and one library for both keeps the
output consistent. Every command also speaks `--output json` with stable keys, for scripts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conveyor._core.ports import RecordFilter, RecordStore, SortOrder
from conveyor._core.records import Record
from conveyor._core.runstate import RunState
from conveyor._engine import checks, run_filters
from conveyor._engine.client import CONTROLS, Client
from conveyor._engine.run_data import forked_from_data, object_data, record_data, status_name
from conveyor._engine.spec import WorkflowSpec
from conveyor.cli._stores import dsn_option, load_specs, record_store, workflows_option
from conveyor.errors import (
    ConveyorError,
    ForkRefused,
    InvalidInput,
    InvalidStatus,
    InvalidTransition,
    RecordNotFound,
    SchemaNotMigrated,
    ServiceUnavailable,
    VersionConflict,
    WorkflowInProgress,
)

T = TypeVar("T")
Specs = dict[str, WorkflowSpec[Any, Any]]

EXIT_OK = 0
EXIT_SERVICE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4

# Bulk actions collect their matches in pages of this size before changing anything, so that the changes they
# make cannot move runs in or out of the pages still to be read.
_PAGE = 500
# Runs changed at once by a bulk action: enough to fill the store's batched lookups, few enough to stay polite.
_CONCURRENCY = 16
# Postgres keeps the offset in a bigint: a larger one is the user's mistake, not the database failing.
_MAX_OFFSET = 2**63 - 1

_PAST = {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "delete": "deletion requested"}


class RunNotFound(click.ClickException):
    exit_code = EXIT_NOT_FOUND


def _service_errors() -> tuple[type[BaseException], ...]:
    """What a failing database raises mid-command (the store wraps connecting, not every later query)."""
    errors: tuple[type[BaseException], ...] = (ServiceUnavailable, SchemaNotMigrated, VersionConflict, OSError)
    try:
        import psycopg
    except ImportError:
        return errors
    return (*errors, psycopg.Error)


_FAILURES: tuple[type[BaseException], ...] = (*_service_errors(), ConveyorError)


def _with_store(dsn: str, body: Callable[[RecordStore], Awaitable[T]]) -> T:
    """Run `body` with the record store open; a database that cannot be used exits 1 with its message."""

    async def main() -> T:
        async with record_store(dsn) as store:
            return await body(store)

    try:
        return asyncio.run(main())
    except InvalidInput as e:
        # The store refused an argument it alone could check (e.g. a cursor naming no run): bad usage.
        raise click.UsageError(str(e)) from None
    except SchemaNotMigrated as e:
        raise click.ClickException(str(e)) from None
    except _service_errors() as e:
        raise click.ClickException(f"the record store failed: {_first_line(e)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- arguments ---------------------------------------------------------------------------------------------------


RUN_STATE_NAMES = tuple(s.name.lower() for s in run_filters.RUN_STATES)


def _bad(param: click.Parameter | str, raw: object, error: InvalidInput) -> click.BadParameter:
    """The shared readers' InvalidInput as click's usage error, naming the option as typed (and a long value by
    its length: echoing a pasted kilobyte back helps nobody)."""
    shown = repr(raw) if len(str(raw)) <= 80 else f"a value of {len(str(raw))} characters"
    if isinstance(param, str):
        return click.BadParameter(f"{shown}: expected {error.expected}", param_hint=param)
    return click.BadParameter(f"{shown}: expected {error.expected}", param=param)


def _parse_run_states(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[RunState, ...]:
    """Run states as the UI reads them: by name in any case (`paused`, `requested-data-deleted`) or number,
    repeated or separated by commas."""
    states: list[RunState] = []
    # A value with nothing in it ("", ",") is read as it is, and refused: given on purpose, it is not "any".
    for value in [part for raw in values for part in run_filters.split_values([raw]) or [raw]]:
        try:
            states.append(run_filters.run_state(value))
        except InvalidInput as e:
            raise _bad(param, value, e) from None
    return tuple(dict.fromkeys(states))


def _text_option(
    max_length: int, *, allow_newlines: bool = False, allow_empty: bool = True
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback refusing text the store cannot hold (NUL, control characters, absurd lengths) as bad
    usage (exit 2), before the database would fail on it (exit 1); and, unless `allow_empty`, an empty value (no
    workflow or run has an empty name: it is a shell variable that was not set)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        values = value if isinstance(value, tuple) else () if value is None else (value,)
        for one in values:
            if not allow_empty and not one.strip():
                raise click.BadParameter(f"{one!r}: expected a value that is not empty", param=param)
            try:
                run_filters.text(param.name or "value", one, max_length=max_length, allow_newlines=allow_newlines)
            except InvalidInput as e:
                raise _bad(param, one, e) from None
        return value

    return check


def _output_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="table: aligned columns for people; json: stable keys for scripts.",
    )(fn)


def _filter_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed(
        [
            click.option(
                "--workflow",
                "-w",
                default=None,
                callback=_text_option(run_filters.MAX_NAME, allow_empty=False),
                help="Only runs of this workflow.",
            ),
            click.option(
                "--status",
                "statuses",
                multiple=True,
                metavar="NAME|NUMBER",
                help="Only runs at this status (repeatable, or separated by commas). Names need --entrypoint of the "
                "workflow.",
            ),
            click.option(
                "--run-state",
                "run_states",
                multiple=True,
                metavar="STATE",
                callback=_parse_run_states,
                help=f"Only runs in this run state (repeatable, or separated by commas): {', '.join(RUN_STATE_NAMES)}, "
                f"in any case, or its number (1 to {len(RUN_STATE_NAMES)}).",
            ),
            click.option(
                "--foreign-id",
                "foreign_ids",
                multiple=True,
                callback=_text_option(run_filters.MAX_FOREIGN_ID),
                help="Only runs for this foreign id (repeatable).",
            ),
        ]
    ):
        fn = decorator(fn)
    return fn


def _resolve_statuses(values: Sequence[str], workflow: str | None, specs: Specs) -> tuple[list[int], str | None]:
    """The status numbers `--status` names, and the workflow they belong to when names imply one (a name means
    something only in its own workflow, so naming one restricts the listing to that workflow)."""
    numbers: list[int] = []
    implied = workflow
    for value in [part for raw in values for part in run_filters.split_values([raw]) or [raw]]:
        # Only a name needs its workflow's spec; anything else ("7", "-1", "1.5") is read, or refused, as a number.
        spec = _spec_for_names(value, implied, specs) if run_filters.is_name(value) else None
        try:
            numbers.append(run_filters.status(value, spec))
        except InvalidInput as e:
            raise _bad("'--status'", value, e) from None
        if spec is not None:
            implied = spec.name
    return numbers, implied


def _spec_for_names(raw: str, workflow: str | None, specs: Specs) -> WorkflowSpec[Any, Any]:
    if not specs:
        raise _bad_status(f"{raw!r} is a status name: give the workflow's --entrypoint MODULE:ATTR, or the number")
    if workflow is not None:
        if workflow not in specs:
            raise _bad_status(
                f"{raw!r}: workflow {workflow!r} is not among the --entrypoint workflows ({', '.join(sorted(specs))})"
            )
        return specs[workflow]
    if len(specs) > 1:
        raise _bad_status(f"{raw!r}: several --entrypoint workflows; give --workflow to say whose status it is")
    return next(iter(specs.values()))


def _bad_status(message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint="'--status'")


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    workflow: str | None
    filter: RecordFilter

    @property
    def empty(self) -> bool:
        f = self.filter
        return self.workflow is None and not (f.statuses or f.run_states or f.foreign_ids)


def _selection(
    workflow: str | None,
    statuses: tuple[str, ...],
    run_states: tuple[RunState, ...],
    foreign_ids: tuple[str, ...],
    specs: Specs,
) -> Selection:
    numbers, workflow = _resolve_statuses(statuses, workflow, specs)
    return Selection(
        workflow,
        RecordFilter(foreign_ids=foreign_ids, statuses=numbers, run_states=run_states),
    )


# --- rendering ---------------------------------------------------------------------------------------------------


def _console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps whole lines (grep, less -S; _print widens it to the longest row); a terminal gets columns
    # fitted to its width. Markup and emoji codes are off: cells hold users' foreign ids and reasons, shown exactly
    # as stored.
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False, width=None if stream.isatty() else 500)


def _status_text(record: Record, specs: Specs) -> str:
    return status_name(record, specs) or str(record.status)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print(table: Table) -> None:
    console = _console()
    if not sys.stdout.isatty():
        # Piped, a row is as wide as it needs (a long foreign id is never cropped): measured with room to spare.
        console.width = 1_000_000
        console.width = max(console.measure(table).maximum, 80)
    with console.capture() as captured:
        console.print(table)
    # rich pads every cell, the last column's too; trailing blanks only get in the way of diff and grep.
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, no_wrap=True)
    return table


def _runs_table(records: Sequence[Record], specs: Specs) -> Table:
    table = _table("RUN ID", "WORKFLOW", "FOREIGN ID", "STATUS", "RUN STATE", "CREATED (UTC)", "UPDATED (UTC)")
    for r in records:
        table.add_row(
            r.run_id,
            r.workflow_name,
            r.foreign_id,
            _status_text(r, specs),
            r.run_state.name,
            _time(r.created_at),
            _time(r.updated_at),
        )
    return table


# --- commands ----------------------------------------------------------------------------------------------------

RUNS_HELP = f"""List, show and steer runs in a workflow's Postgres record store.

State changes are the reference's: pause and cancel stop a run, resume restarts a paused one, delete requests
deletion of a finished run's data; each is written with its event in one transaction, under the run's version.

\b
Exit codes:
  {EXIT_OK}  done
  {EXIT_SERVICE}  the record store failed (unreachable or unmigrated database), or a bulk action was declined
  {EXIT_USAGE}  bad usage: an argument is missing or not what was expected (nothing was read or changed)
  {EXIT_NOT_FOUND}  a run was not found
  {EXIT_REFUSED}  a state change was refused (e.g. resuming a completed run); that run is unchanged
A bulk action exits with the most serious code among its runs (1, then 4, then 3) and lists the runs not changed.
"""


@click.group(help=RUNS_HELP)
def runs() -> None:
    pass


@runs.command("list", short_help="List runs, newest first, with filters and paging.")
@dsn_option
@workflows_option
@_filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=25, show_default=True, help="Runs per page.")
@click.option(
    "--after",
    metavar="RUN_ID",
    default=None,
    callback=_text_option(run_filters.MAX_NAME, allow_empty=False),
    help="The page after this run (the last run id of the previous page): as fast deep down as on page one.",
)
@click.option("--offset", type=click.IntRange(0, _MAX_OFFSET), default=0, show_default=True, help="Matches to skip.")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@_output_option
def list_runs(
    dsn: str,
    entrypoints: tuple[str, ...],
    paths: tuple[str, ...],
    workflow: str | None,
    statuses: tuple[str, ...],
    run_states: tuple[RunState, ...],
    foreign_ids: tuple[str, ...],
    limit: int,
    after: str | None,
    offset: int,
    oldest_first: bool,
    output: str,
) -> None:
    """List runs, newest first, a page at a time: the next page is --after the last run id shown (or --offset)."""
    specs = load_specs(entrypoints, paths)
    selection = _selection(workflow, statuses, run_states, foreign_ids, specs)
    order = SortOrder.ASCENDING if oldest_first else SortOrder.DESCENDING

    async def body(store: RecordStore) -> list[Record]:
        # One more than asked tells whether there is a next page without counting every match.
        try:
            return await store.list(
                selection.workflow,
                offset=offset,
                limit=limit + 1,
                order=order,
                filter=selection.filter,
                after=after,
            )
        except InvalidInput as e:
            if e.field != "after":
                raise
            raise click.BadParameter(
                f"{after!r}: expected the run id of a stored run", param_hint="'--after'"
            ) from None

    found = _with_store(dsn, body)
    page, more = found[:limit], len(found) > limit
    next_after = page[-1].run_id if more else None
    if output == "json":
        _echo_json(
            {
                "runs": [record_data(r, specs) for r in page],
                "limit": limit,
                "after": after,
                "offset": offset,
                "next_after": next_after,
                "next_offset": offset + limit if more else None,
            }
        )
        return
    if not page:
        click.echo("no runs match" if after is None and offset == 0 else "no more runs match")
        return
    _print(_runs_table(page, specs))
    if next_after is not None:
        click.echo(f"more: next page with --after {next_after}", err=True)


@runs.command("show", short_help="Show a run, its object and its history.")
@click.argument("run_id", callback=_text_option(run_filters.MAX_NAME, allow_empty=False))
@dsn_option
@workflows_option
@_output_option
def show(dsn: str, entrypoints: tuple[str, ...], paths: tuple[str, ...], run_id: str, output: str) -> None:
    """Show a run: its record and meta, its object (as JSON when it is JSON) and the history of its states."""
    specs = load_specs(entrypoints, paths)

    async def body(store: RecordStore) -> tuple[Record, list[Record]]:
        try:
            record = await store.lookup(run_id)
        except RecordNotFound:
            raise RunNotFound(f"run {run_id!r} not found") from None
        return record, await store.history(run_id)

    record, history = _with_store(dsn, body)
    if output == "json":
        # The UI's GET /api/runs/{run_id} gives the same run and history (its actions aside).
        _echo_json({**record_data(record, specs), "history": [record_data(h, specs) for h in history]})
        return
    obj, encoding = object_data(record.object)
    fields = _table("FIELD", "VALUE")
    fields.show_header = False
    for name, value in (
        ("run id", record.run_id),
        ("workflow", record.workflow_name),
        ("foreign id", record.foreign_id),
        ("status", _status_text(record, specs)),
        ("run state", record.run_state.name),
        ("reason", record.meta.run_state_reason or "-"),
        ("status description", record.meta.status_description or "-"),
        ("version", str(record.meta.version)),
        ("trace origin", record.meta.trace_origin or "-"),
        ("forked from", _forked_from_text(record, specs)),
        ("created (UTC)", _time(record.created_at)),
        ("updated (UTC)", _time(record.updated_at)),
    ):
        fields.add_row(name, value)
    _print(fields)
    click.echo()
    if encoding is None:
        click.echo("object: deleted")
    elif encoding == "json":
        click.echo("object:")
        click.echo(json.dumps(obj, indent=2, ensure_ascii=False))
    else:
        click.echo(f"object (not JSON; {encoding}): {obj}")
    click.echo()
    click.echo("history:")
    table = _table("VERSION", "STATUS", "RUN STATE", "REASON", "AT (UTC)")
    for h in history:
        table.add_row(
            str(h.meta.version),
            _status_text(h, specs),
            h.run_state.name,
            h.meta.run_state_reason or "-",
            _time(h.updated_at),
        )
    _print(table)


def _forked_from_text(record: Record, specs: Specs) -> str:
    origin = forked_from_data(record, specs)
    if origin is None:
        return "-"
    return f"{origin['run_id']} at {origin['status_name'] or origin['status']}"


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    run_id: str
    result: Literal["done", "not_found", "refused", "failed"]
    message: str = ""
    record: Record | None = None


# In order of seriousness: a bulk action exits with the first that any of its runs met.
_EXIT_BY_RESULT = {"failed": EXIT_SERVICE, "refused": EXIT_REFUSED, "not_found": EXIT_NOT_FOUND}


async def _apply(client: Client, run_id: str, target: RunState, reason: str) -> Outcome:
    try:
        record = await client.change_state(run_id, target, reason)
    except RecordNotFound:
        return Outcome(run_id, "not_found", f"run {run_id!r} not found")
    except InvalidTransition as e:
        return Outcome(run_id, "refused", str(e))
    except VersionConflict:
        return Outcome(run_id, "failed", f"run {run_id}: it kept changing under every attempt; try again")
    except _FAILURES as e:
        return Outcome(run_id, "failed", f"run {run_id}: {_first_line(e)}")
    return Outcome(run_id, "done", record=record)


async def _matches(store: RecordStore, selection: Selection) -> list[str]:
    run_ids: list[str] = []
    while True:
        page = await store.list(
            selection.workflow,
            limit=_PAGE,
            order=SortOrder.ASCENDING,
            filter=selection.filter,
            after=run_ids[-1] if run_ids else None,
        )
        run_ids.extend(r.run_id for r in page)
        if len(page) < _PAGE:
            return run_ids


async def _apply_all(
    store: RecordStore, run_ids: Sequence[str], target: RunState, reason: str, *, label: str, progress: bool
) -> list[Outcome]:
    gate = asyncio.Semaphore(_CONCURRENCY)
    client = Client(store)

    async def one(run_id: str) -> Outcome:
        async with gate:
            outcome = await _apply(client, run_id, target, reason)
        if bar is not None:
            bar.advance(task)
        return outcome

    bar = (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_console(stderr=True),
        )
        if progress
        else None
    )
    if bar is None:
        return list(await asyncio.gather(*(one(r) for r in run_ids)))
    with bar:
        task = bar.add_task(label, total=len(run_ids))
        return list(await asyncio.gather(*(one(r) for r in run_ids)))


def _action(verb: str) -> click.Command:
    target = CONTROLS[verb]
    helps = {
        "pause": "Pause runs: their steps stop acting on them until they are resumed.",
        "resume": "Resume paused runs.",
        "cancel": "Cancel runs: they stop for good.",
        "delete": "Request deletion of finished runs' data (the workflow's data-deletion consumer erases it).",
    }
    shorts = {
        "pause": "Pause runs.",
        "resume": "Resume paused runs.",
        "cancel": "Cancel runs.",
        "delete": "Request deletion of finished runs' data.",
    }

    @click.command(
        verb,
        short_help=shorts[verb],
        help=f"""{helps[verb]}

Give RUN_IDs, or filters to act on every matching run (after a confirmation, unless --yes, with a progress
bar). A run whose state cannot become {target.name} is refused and left unchanged; the others still change.""",
    )
    @click.argument("run_ids", nargs=-1, callback=_text_option(run_filters.MAX_NAME, allow_empty=False))
    @dsn_option
    @workflows_option
    @_filter_options
    @click.option(
        "--reason",
        default="",
        callback=_text_option(checks.MAX_REASON, allow_newlines=True),
        help="Why (kept with the run).",
    )
    @click.option("--yes", "-y", is_flag=True, help="Do not ask before acting on every match of the filters.")
    @_output_option
    def command(
        dsn: str,
        entrypoints: tuple[str, ...],
        paths: tuple[str, ...],
        run_ids: tuple[str, ...],
        workflow: str | None,
        statuses: tuple[str, ...],
        run_states: tuple[RunState, ...],
        foreign_ids: tuple[str, ...],
        reason: str,
        yes: bool,
        output: str,
    ) -> None:
        specs = load_specs(entrypoints, paths)
        selection = _selection(workflow, statuses, run_states, foreign_ids, specs)
        if run_ids and not selection.empty:
            raise click.UsageError(
                "give RUN_IDs or filters (--workflow, --status, --run-state, --foreign-id), not both"
            )
        if not run_ids and selection.empty:
            raise click.UsageError(
                "give RUN_IDs, or filters (--workflow, --status, --run-state, --foreign-id) to act on every match"
            )
        bulk = not run_ids

        async def body(store: RecordStore) -> list[Outcome] | None:
            chosen = list(dict.fromkeys(run_ids)) if run_ids else await _matches(store, selection)
            if bulk:
                if not chosen:
                    return []
                if not yes and not click.confirm(f"{verb} {_count(len(chosen))}?", err=True):
                    return None
            return await _apply_all(store, chosen, target, reason, label=verb, progress=bulk or len(chosen) > 1)

        outcomes = _with_store(dsn, body)
        if outcomes is None:
            _fail(EXIT_SERVICE, "declined: nothing changed")
        _report(verb, outcomes, specs, output)

    return command


def _count(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _report(verb: str, outcomes: Sequence[Outcome], specs: Specs, output: str) -> None:
    failed = [o for o in outcomes if o.result != "done"]
    if output == "json":
        _echo_json(
            {
                "action": verb,
                "results": [
                    {
                        "run_id": o.run_id,
                        "result": o.result,
                        "message": o.message,
                        "run": record_data(o.record, specs) if o.record is not None else None,
                    }
                    for o in outcomes
                ],
                "summary": {
                    key: sum(o.result == key for o in outcomes) for key in ("done", "not_found", "refused", "failed")
                },
            }
        )
    else:
        done = [o.record for o in outcomes if o.record is not None]
        if not outcomes:
            click.echo("no runs match: nothing changed")
        elif done:
            table = _table("RUN ID", "WORKFLOW", "FOREIGN ID", "STATUS", "RUN STATE", "RESULT")
            for r in done:
                table.add_row(
                    r.run_id, r.workflow_name, r.foreign_id, _status_text(r, specs), r.run_state.name, _PAST[verb]
                )
            _print(table)
    if not failed:
        return
    for o in failed:
        click.echo(f"Error: {o.message}", err=True)
    if len(outcomes) > 1:
        kinds = ", ".join(
            f"{sum(o.result == key for o in failed)} {key.replace('_', ' ')}"
            for key in ("failed", "refused", "not_found")
            if any(o.result == key for o in failed)
        )
        click.echo(f"{verb}: {len(failed)} of {_count(len(outcomes))} not changed ({kinds})", err=True)
    sys.exit(next(_EXIT_BY_RESULT[key] for key in _EXIT_BY_RESULT if any(o.result == key for o in failed)))


@runs.command("fork", short_help="Start a new run from a stopped run, at a status it passed through.")
@click.argument("run_id", callback=_text_option(run_filters.MAX_NAME, allow_empty=False))
@dsn_option
@workflows_option
@click.option(
    "--status",
    "status_text",
    metavar="STATUS",
    help="Where the new run starts: a status the run reached, by name or number (default: where the run is).",
)
@click.option(
    "--object-file",
    type=click.File("rb"),
    help="The new run's object as JSON ('-' for stdin), checked against the workflow's type (default: the "
    "object the run had at that status).",
)
@_output_option
def fork(
    dsn: str,
    entrypoints: tuple[str, ...],
    paths: tuple[str, ...],
    run_id: str,
    status_text: str | None,
    object_file: Any,
    output: str,
) -> None:
    """Start a new run of RUN_ID's workflow and foreign id at a status it passed through, with the object it had
    there (or --object-file), as DBOS's fork and Temporal's reset do. RUN_ID must be completed, cancelled or
    paused; a paused run is cancelled ("forked to <new run id>") in the same transaction. The new run records
    where it came from (`runs show`). Needs the workflow's code (--entrypoint): it types the object and statuses.

    Exits 3 if RUN_ID is not found, 4 if it cannot be forked (still active, its data deleted, or another run of
    its foreign id in progress)."""
    specs = load_specs(entrypoints, paths)
    replacement: Any = None
    if object_file is not None:
        try:
            replacement = json.loads(object_file.read())
        except ValueError as e:
            raise click.BadParameter(f"not JSON: {e}", param_hint="'--object-file'") from None

    async def body(store: RecordStore) -> tuple[Record, Record]:
        try:
            record = await store.lookup(run_id)
        except RecordNotFound:
            raise RunNotFound(f"run {run_id!r} not found") from None
        spec = specs.get(record.workflow_name)
        if spec is None:
            raise click.UsageError(
                f"forking needs the code of workflow {record.workflow_name!r}: give its Builder with --entrypoint "
                "MODULE:ATTR"
            )
        status: int | None = None
        if status_text is not None:
            try:
                status = run_filters.status(status_text, spec)
            except InvalidInput as e:
                raise _bad("'--status'", status_text, e) from None
        client = Client(store, spec)
        try:
            forked_id = await client.fork(run_id, status, object=replacement)
        except InvalidStatus as e:
            raise _bad("'--status'", status_text or status_name(record, specs) or record.status, e) from None
        except InvalidInput as e:
            if e.field == "object":
                raise click.BadParameter(str(e), param_hint="'--object-file'") from None
            raise
        except (ForkRefused, WorkflowInProgress) as e:
            _fail(EXIT_REFUSED, str(e))
        return await store.lookup(forked_id), await store.lookup(run_id)

    forked, old = _with_store(dsn, body)
    if output == "json":
        _echo_json({"run": record_data(forked, specs), "forked_from": record_data(old, specs, with_object=False)})
        return
    table = _table("RUN ID", "WORKFLOW", "FOREIGN ID", "STATUS", "RUN STATE", "FORKED FROM")
    table.add_row(
        forked.run_id,
        forked.workflow_name,
        forked.foreign_id,
        _status_text(forked, specs),
        forked.run_state.name,
        f"{old.run_id} ({old.run_state.name.lower()})",
    )
    _print(table)


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


for _verb in CONTROLS:
    runs.add_command(_action(_verb))
