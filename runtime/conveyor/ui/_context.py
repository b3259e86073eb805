"""What every UI handler shares: the record store, the known workflows, the action switch and the CSRF secret;
plus the reads and the one write both the JSON API and the HTML pages make (a page of runs, a run and its history,
a state change), so the two can never disagree. A run as data is conveyor._engine.run_data's, as in the CLI.

Every store call goes through `_guard`: the UI takes any RecordStore, so it cannot know the driver's exceptions;
anything a store raises that is not one of conveyor's errors is the store failing (a dropped connection, a pool
timeout) and becomes StoreFailed, which the app answers with 503 instead of a bare 500."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import RecordFilter, RecordStore, SortOrder, StatusCount
from conveyor._core.records import Record
from conveyor._core.runstate import RunState
from conveyor._engine import run_filters
from conveyor._engine.client import CONTROLS, Client
from conveyor._engine.run_data import object_data, record_data, status_name
from conveyor._engine.spec import WorkflowSpec
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.ui._csrf import Csrf, Forbidden
from conveyor.ui._query import ListQuery
from conveyor.ui._waiting import PAUSED_SHOWN

T = TypeVar("T")

# The run states `Client.fork` starts a new run from.
FORKABLE = frozenset({RunState.COMPLETED, RunState.CANCELLED, RunState.PAUSED})


class StoreFailed(Exception):
    """The record store raised something other than a conveyor error: it is down or broken, not the request."""


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except ConveyorError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise StoreFailed(f"the record store failed: {type(e).__name__}{': ' + first if first else ''}") from e


class UnknownWorkflow(LookupError):
    """A workflow the UI was not given (answered 404, as an unknown run is)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Waiting:
    """What the workflow page shows: the workflow, its active runs counted per status and run state, the newest
    paused runs, and the time the ages are measured at."""

    spec: WorkflowSpec[Any, Any]
    counts: list[StatusCount]
    paused: list[Record]
    now: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    records: list[Record]
    next_cursor: str | None
    prev_cursor: str | None


@dataclasses.dataclass(slots=True)
class Context:
    store: RecordStore
    workflows: Mapping[str, WorkflowSpec[Any, Any]]
    allow_actions: bool
    clock: Clock | None
    csrf: Csrf
    allowed_hosts: frozenset[str] = frozenset()
    client: Client = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        # The one path for changing a run; its reads stay the store's (the UI shows records).
        self.client = Client(self.store, *self.workflows.values(), clock=self.clock)

    async def page(self, query: ListQuery) -> Page:
        """One page of runs, with the cursors of the pages either side (None where there is none)."""
        backwards = query.before is not None
        # The page before a run is the page after it in the other order, turned round.
        order = query.order
        if backwards:
            order = SortOrder.ASCENDING if order is SortOrder.DESCENDING else SortOrder.DESCENDING
        field = "before" if backwards else "cursor"
        try:
            # One more than asked tells whether a further page exists without counting every match.
            found = await _guard(
                self.store.list(
                    query.workflow,
                    limit=query.limit + 1,
                    order=order,
                    filter=query.record_filter(),
                    after=query.before if backwards else query.cursor,
                )
            )
        except InvalidInput as e:
            if e.field == "after":
                raise InvalidInput(
                    field, "the run id of a stored run (from next_cursor or prev_cursor)", query.before or query.cursor
                ) from None
            raise
        more = len(found) > query.limit
        records = found[: query.limit]
        if backwards:
            records.reverse()
            return Page(records, records[-1].run_id if records else None, records[0].run_id if more else None)
        next_cursor = records[-1].run_id if more else None
        # A page after a cursor has the cursor's own page before it.
        prev_cursor = records[0].run_id if query.cursor is not None and records else None
        return Page(records, next_cursor, prev_cursor)

    async def run(self, run_id: str) -> tuple[Record, list[Record]]:
        """The run and its history, oldest first; RecordNotFound for an unknown run."""
        record = await _guard(self.store.lookup(run_id))
        return record, await _guard(self.store.history(run_id))

    async def waiting(self, workflow: str) -> Waiting:
        """Where the workflow's runs wait; UnknownWorkflow unless the UI was given it. Both reads are index-backed
        (count_active reads the unfinished runs' index, a paused page the run-state one), so they cost the same on
        a store of 100k finished runs as on an empty one."""
        spec = self.workflows.get(workflow)
        if spec is None:
            raise UnknownWorkflow(f"no workflow named {workflow!r} was given to the UI (conveyor ui --entrypoint)")
        counts = await _guard(self.store.count_active(workflow))
        paused = await _guard(
            self.store.list(
                workflow,
                limit=PAUSED_SHOWN,
                order=SortOrder.DESCENDING,
                filter=RecordFilter(run_states=(RunState.PAUSED,)),
            )
        )
        return Waiting(spec, counts, paused, (self.clock or SystemClock()).now())

    def require_actions(self) -> None:
        """Forbidden unless the UI was started with actions allowed: the first check of every action."""
        if not self.allow_actions:
            raise Forbidden("actions are disabled (start the UI with --allow-actions)")

    async def control(self, run_id: str, action: str, reason: str) -> Record:
        return await _guard(self.client.change_state(run_id, CONTROLS[action], reason))

    async def fork(self, run_id: str, status: str | None, object: Any = None) -> tuple[Record, Record]:
        """Fork the run (`Client.fork`) at `status` (a name or number; None: where it is), with `object` instead
        of its stored one if given; the new run and the old one as they are now."""
        record = await _guard(self.store.lookup(run_id))
        spec = self.workflows.get(record.workflow_name)
        if spec is None:
            raise InvalidInput(
                "workflow",
                f"a workflow the UI was given (forking needs the code of {record.workflow_name!r}: start the UI "
                "with its --entrypoint)",
                record.workflow_name,
            )
        at = run_filters.status(status, spec) if status is not None else None
        forked_id = await _guard(self.client.fork(run_id, at, object=object))
        return await _guard(self.store.lookup(forked_id)), await _guard(self.store.lookup(run_id))

    def actions(self, record: Record) -> list[str]:
        """The actions the run's state allows now (whether or not actions are enabled): the run controls, and
        fork for a stopped run that still has its data, of a workflow the UI has the code of."""
        found = [name for name, target in CONTROLS.items() if record.run_state.can_become(target)]
        if record.run_state in FORKABLE and record.object is not None and record.workflow_name in self.workflows:
            found.append("fork")
        return found

    def fork_statuses(self, record: Record, history: list[Record]) -> list[tuple[int, str]]:
        """Where a fork of the run may start: the statuses it reached that something consumes, in the order it
        first reached them, as (number, name)."""
        spec = self.workflows.get(record.workflow_name)
        if spec is None:
            return []
        consumed = set(spec.steps) | set(spec.callbacks) | set(spec.timeouts)
        reached = dict.fromkeys(h.status for h in history if h.status in consumed)
        return [(status, status_name(record, self.workflows, status) or str(status)) for status in reached]

    def run_data(self, record: Record, *, with_object: bool = True) -> dict[str, Any]:
        return record_data(record, self.workflows, with_object=with_object)


def object_text(raw: bytes | None) -> str | None:
    """The object as a person reads it: indented JSON, or the text, or base64; None once deleted."""
    value, encoding = object_data(raw)
    if encoding == "json":
        return json.dumps(value, indent=2, ensure_ascii=False)
    return None if value is None else str(value)
