"""Client: acting on runs from any process with a record store alone (a web backend that starts or cancels runs,
the CLI, the UI, the WorkflowRun mirror), as DBOS's `DBOSClient` and Temporal's `Client` do for theirs.

This is the one path by which a run is triggered, controlled (paused, resumed, cancelled, its data deletion
requested) or called back: `Workflow`'s own methods are this client over the workflow's runtime. Each change is
one `RecordStore.store` under a version check, so the record and its outbox event are written in one transaction
and a running worker picks the change up exactly as it picks up its own; a worker acting on the run meanwhile
makes the attempt retry instead of being overwritten.

Triggers and callbacks need the workflow's code (its object type, statuses and callback functions), so a client
is given the workflows it triggers (`Workflow`s, `Builder`s or built specs). Reads and run controls work on any
run in the store: a run of a workflow the client was not given comes back with its status as the stored number
and its object as the stored JSON (decoded)."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import enum
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import EventStreamer, RecordFilter, RecordStore, SortOrder
from conveyor._core.records import Meta, Record, run_state_change_topic, topic
from conveyor._core.runstate import RunState
from conveyor._engine import checks, roles, tracing
from conveyor._engine.metrics import WorkflowMetrics
from conveyor._engine.opened import OpenAdapters
from conveyor._engine.run import Run
from conveyor._engine.run_ids import new_run_id
from conveyor._engine.spec import WorkflowSpec
from conveyor._engine.writer import RunWriter, next_record
from conveyor.errors import (
    ForkRefused,
    InvalidInput,
    InvalidStatus,
    InvalidTransition,
    RecordNotFound,
    VersionConflict,
    WorkflowInProgress,
)

if TYPE_CHECKING:
    from conveyor._engine.builder import Builder
    from conveyor._engine.workflow import Workflow

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

# Attempts of a run control against workers that keep changing the run (each attempt reads it again).
CONTROL_ATTEMPTS = 10
MAX_PAGE = 1000

# The controls and the run state each asks for; "delete" requests deletion of the run's data.
CONTROLS: dict[str, RunState] = {
    "pause": RunState.PAUSED,
    "resume": RunState.RUNNING,
    "cancel": RunState.CANCELLED,
    "delete": RunState.REQUESTED_DATA_DELETED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class RunPage(Generic[T, S]):
    """One page of `Client.list`: the runs, and `next_after`, the run id to pass as `after` for the next page
    (None on the last page)."""

    runs: list[Run[T, S]]
    next_after: str | None


class Client:
    """`Client(store, *workflows, streamer=None)`: trigger, read and steer runs with a record store alone.

    `workflows` are the workflows this client triggers and calls back (their `Workflow`, `Builder` or spec);
    `streamer` is needed only by `wait_for`. Use as `async with Client(...) as client:` (or `open()` / `close()`),
    which opens the store and the streamer. A client given a running `Workflow` on the same store shares its
    runtime: a run it triggers may start at once in that process."""

    def __init__(
        self,
        store: RecordStore,
        *workflows: Workflow[Any, Any] | Builder[Any, Any] | WorkflowSpec[Any, Any],
        streamer: EventStreamer | None = None,
        clock: Clock | None = None,
        debug: bool = False,
    ) -> None:
        if store is None or not hasattr(store, "lookup"):
            raise InvalidInput("store", "a RecordStore", store)
        self._store = store
        self._streamer = streamer
        self._clock = clock or SystemClock()
        self._debug = debug
        self._writers: dict[str, RunWriter[Any, Any]] = {}
        self._metrics: dict[str, WorkflowMetrics] = {}
        self._opened = OpenAdapters()
        for workflow in workflows:
            self._register(workflow)

    @classmethod
    def _of(cls, writer: RunWriter[Any, Any], streamer: EventStreamer | None) -> Client:
        """The client a `Workflow` acts through: its own runtime, clock and streamer."""
        client = cls(writer.store, streamer=streamer, clock=writer.clock)
        client._writers[writer.name] = writer
        return client

    # -- set-up ------------------------------------------------------------------------------------------------

    @property
    def store(self) -> RecordStore:
        return self._store

    @property
    def workflows(self) -> dict[str, WorkflowSpec[Any, Any]]:
        """The specs of the workflows this client was given, by name."""
        return {name: writer.spec for name, writer in self._writers.items()}

    async def open(self) -> None:
        """Open the store (and the streamer, if given). Idempotent."""
        await self._opened.open([self._store] if self._streamer is None else [self._store, self._streamer])

    async def close(self) -> None:
        await self._opened.close()

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _register(self, workflow: object, field: str = "workflows") -> RunWriter[Any, Any]:
        from conveyor._engine.builder import Builder
        from conveyor._engine.workflow import Workflow

        writer: RunWriter[Any, Any]
        if isinstance(workflow, Workflow):
            writer = workflow._rt
            if writer.store is not self._store:
                writer = RunWriter(workflow.spec, store=self._store, clock=self._clock, debug=self._debug)
        elif isinstance(workflow, Builder):
            spec = workflow.spec(timeout_store_given=True)
            writer = RunWriter(spec, store=self._store, clock=self._clock, debug=self._debug)
        elif isinstance(workflow, WorkflowSpec):
            writer = RunWriter(workflow, store=self._store, clock=self._clock, debug=self._debug)
        else:
            raise InvalidInput(field, "Workflow, Builder or workflow spec objects (or a workflow's name)", workflow)
        known = self._writers.get(writer.name)
        if known is not None and known.spec is not writer.spec:
            raise InvalidInput("workflows", f"one definition of workflow {writer.name!r}", "two")
        self._writers[writer.name] = writer
        return writer

    def _writer(self, workflow: object) -> RunWriter[Any, Any]:
        """The writer of a workflow given by name or definition (a definition not given yet is added)."""
        if isinstance(workflow, str):
            found = self._writers.get(workflow)
            if found is None:
                known = ", ".join(self._writers) or "none"
                raise InvalidInput("workflow", f"a workflow this client was given (given: {known})", workflow)
            return found
        name = getattr(workflow, "name", None)
        if isinstance(name, str) and name in self._writers:
            return self._writers[name]
        return self._register(workflow, "workflow")

    # -- triggering ----------------------------------------------------------------------------------------------

    @overload
    async def trigger(
        self,
        workflow: Workflow[T, S] | Builder[T, S] | WorkflowSpec[T, S],
        foreign_id: str,
        *,
        initial_value: T | None = None,
        start_at: S | None = None,
        run_id: str | None = None,
    ) -> str: ...

    @overload
    async def trigger(
        self,
        workflow: str,
        foreign_id: str,
        *,
        initial_value: Any = None,
        start_at: Any = None,
        run_id: str | None = None,
    ) -> str: ...

    async def trigger(
        self,
        workflow: Any,
        foreign_id: str,
        *,
        initial_value: Any = None,
        start_at: Any = None,
        run_id: str | None = None,
    ) -> str:
        """Start a run of `workflow` for `foreign_id` and return its run id; WorkflowInProgress if one is still in
        progress. `initial_value` is checked against the workflow's object type (default: the type's zero value),
        `start_at` must be a status something consumes (default: the first).

        With `run_id` the trigger is idempotent: if the workflow already has that run for `foreign_id` (a retried
        trigger, whatever the run's state now), its id is returned and nothing is created; InvalidInput if the id
        belongs to another workflow or foreign id."""
        writer = self._writer(workflow)
        spec = writer.spec
        checks.foreign_id(foreign_id)
        given = run_id is not None
        if run_id is not None:
            checks.run_id(run_id)
        status = checks.start_status(spec, start_at)
        value = spec.codec.coerce(initial_value, "initial_value") if initial_value is not None else _zero_value(spec)
        now = writer.clock.now()
        run_id = run_id if run_id is not None else new_run_id()
        record = Record(
            spec.name,
            foreign_id,
            run_id,
            RunState.INITIATED,
            int(status),
            spec.codec.encode(value),
            now,
            now,
            Meta(status_description=writer.status_name(int(status)), version=1, trace_origin=_caller()),
        )
        with tracing.traced("trigger", "trigger", run_id, record):
            tracing.stamp(record)
            try:
                await writer.store.store(record, expected_version=None)
            except (VersionConflict, WorkflowInProgress):
                # A store refuses a run id it already has (with either error when that run is still in progress).
                if not given or not await self._already_triggered(spec.name, run_id, foreign_id):
                    raise
                writer.decisions.log("trigger repeated: run exists", record)
                tracing.note_skipped("run exists")
                return run_id
            tracing.note_stored(record)
        writer.metrics.run_state_change(RunState.UNKNOWN, RunState.INITIATED)
        if writer.decisions.enabled:
            writer.decisions.log("triggered run", record)
        writer.stored(record)
        return run_id

    async def _already_triggered(self, workflow_name: str, run_id: str, foreign_id: str) -> bool:
        """True if `run_id` is the workflow's run for `foreign_id`; InvalidInput if it is someone else's."""
        try:
            existing = await self._store.lookup(run_id)
        except RecordNotFound:
            return False
        if existing.workflow_name != workflow_name or existing.foreign_id != foreign_id:
            raise InvalidInput(
                "run_id",
                f"an id not used by another run (it is a run of workflow {existing.workflow_name!r} for foreign id "
                f"{existing.foreign_id!r})",
                run_id,
            )
        return True

    # -- reading -------------------------------------------------------------------------------------------------

    @overload
    async def get(self, run_id: str, workflow: Workflow[T, S] | Builder[T, S] | WorkflowSpec[T, S]) -> Run[T, S]: ...

    @overload
    async def get(self, run_id: str, workflow: str | None = None) -> Run[Any, Any]: ...

    async def get(self, run_id: str, workflow: Any = None) -> Run[Any, Any]:
        """The run as it is now. RecordNotFound if the store has no such run (or, with `workflow`, if the run is
        not that workflow's)."""
        return self._run(await self._record(run_id, workflow))

    @overload
    async def history(
        self, run_id: str, workflow: Workflow[T, S] | Builder[T, S] | WorkflowSpec[T, S]
    ) -> builtins.list[Run[T, S]]: ...

    @overload
    async def history(self, run_id: str, workflow: str | None = None) -> builtins.list[Run[Any, Any]]: ...

    async def history(self, run_id: str, workflow: Any = None) -> builtins.list[Run[Any, Any]]:
        """Every stored version of the run, oldest first; RecordNotFound for an unknown run."""
        await self._record(run_id, workflow)
        return [self._run(r) for r in await self._store.history(run_id)]

    async def list(
        self,
        workflow: str | Workflow[Any, Any] | Builder[Any, Any] | WorkflowSpec[Any, Any] | None = None,
        *,
        foreign_ids: Sequence[str] = (),
        statuses: Sequence[int] = (),
        run_states: Sequence[RunState] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 25,
        after: str | None = None,
        offset: int = 0,
        order: SortOrder = SortOrder.DESCENDING,
    ) -> RunPage[Any, Any]:
        """Runs, newest first (or `order`), that match every filter given (a filter's values are alternatives):
        `limit` of them after skipping `offset`, or after the run `after` (keyset paging: pass the page's
        `next_after`; as fast deep down as on page one). InvalidInput naming `after` if no run has that id."""
        name = workflow if isinstance(workflow, str) or workflow is None else self._writer(workflow).name
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput("limit", f"an integer from 1 to {MAX_PAGE}", limit)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset", "an integer >= 0", offset)
        if not isinstance(order, SortOrder):
            raise InvalidInput("order", "a conveyor.SortOrder", order)
        if after is not None:
            checks.run_id(after, field="after")
        filter = RecordFilter(
            foreign_ids=tuple(checks.foreign_id(f) for f in _values("foreign_ids", foreign_ids)),
            statuses=tuple(_status_number("statuses", s) for s in _values("statuses", statuses)),
            run_states=tuple(_run_state("run_states", s) for s in _values("run_states", run_states)),
            created_after=_moment("created_after", created_after),
            created_before=_moment("created_before", created_before),
        )
        # One more than asked tells whether there is a next page without counting every match.
        found = await self._store.list(name, offset=offset, limit=limit + 1, order=order, filter=filter, after=after)
        page = found[:limit]
        return RunPage([self._run(r) for r in page], page[-1].run_id if len(found) > limit else None)

    async def _record(self, run_id: str, workflow: object = None) -> Record:
        if not isinstance(run_id, str) or not run_id:
            raise InvalidInput("run_id", "a non-empty string", run_id)
        record = await self._store.lookup(run_id)
        if workflow is not None:
            name = workflow if isinstance(workflow, str) else self._writer(workflow).name
            if record.workflow_name != name:
                raise RecordNotFound(f"workflow {name!r} has no run {run_id!r}")
        return record

    def _run(self, record: Record) -> Run[Any, Any]:
        writer = self._writers.get(record.workflow_name)
        if writer is not None:
            return writer.to_run(record)
        return Run(
            workflow_name=record.workflow_name,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            run_state=record.run_state,
            status=record.status,
            object=_stored_value(record.object),
            created_at=record.created_at,
            updated_at=record.updated_at,
            meta=record.meta,
        )

    async def wait_for(
        self, run_id: str, status: enum.IntEnum, *, timeout: float | None = None, foreign_id: str | None = None
    ) -> Run[Any, Any]:
        """Wait until the run has reached `status` (at once if it already has) and return it as it was there;
        the built-in TimeoutError if `timeout` seconds pass first. Needs the streamer and the run's workflow."""
        record = await self._record(run_id)
        if foreign_id is not None and record.foreign_id != checks.foreign_id(foreign_id):
            raise RecordNotFound(f"run {run_id!r} is not a run of foreign id {foreign_id!r}")
        writer = self._writer(record.workflow_name)
        return writer.to_run(await self._wait(writer, record.foreign_id, run_id, status, timeout))

    async def _wait(
        self, writer: RunWriter[Any, Any], foreign_id: str, run_id: str, status: object, timeout: object
    ) -> Record:
        if self._streamer is None:
            raise InvalidInput("streamer", "an EventStreamer given to the Client (wait_for watches events)", None)
        member = checks.member(writer.spec, "status", status)
        seconds = checks.timeout(timeout)
        name = writer.name
        # Terminal statuses complete the run, and completions go to the run-state-change topic.
        watched = (
            run_state_change_topic(name) if writer.spec.graph.is_terminal(int(member)) else topic(name, int(member))
        )
        consumer = f"{roles.await_name(name, int(member), foreign_id)}-{uuid.uuid4().hex[:12]}"
        async with asyncio.timeout(seconds):
            receiver = await self._streamer.receiver(watched, consumer, from_latest=True)
            try:
                # The receiver exists before this look: a change after it is seen by the receiver.
                record = await self._record(run_id, name)
                if record.foreign_id != foreign_id:
                    raise RecordNotFound(f"run {run_id!r} is not a run of foreign id {foreign_id!r}")
                reached = await self._reached(run_id, int(member))
                while reached is None:
                    event = await receiver.recv()
                    await receiver.ack(event)
                    if event.run_id == run_id and event.type == int(member):
                        reached = await self._reached(run_id, int(member))
            finally:
                await receiver.close()
        return reached

    async def _reached(self, run_id: str, status: int) -> Record | None:
        """The latest stored version of the run at `status`, if it ever got there."""
        for version in reversed(await self._store.history(run_id)):
            if version.status == status:
                return version
        return None

    # -- run controls --------------------------------------------------------------------------------------------

    async def pause(self, run_id: str, reason: str = "") -> Run[Any, Any]:
        """Pause the run: no step acts on it until it is resumed. InvalidTransition if its state cannot pause."""
        return self._run(await self.change_state(run_id, RunState.PAUSED, reason))

    async def resume(self, run_id: str) -> Run[Any, Any]:
        """Resume a paused run where it stopped."""
        return self._run(await self.change_state(run_id, RunState.RUNNING))

    async def cancel(self, run_id: str, reason: str = "") -> Run[Any, Any]:
        """Cancel the run for good."""
        return self._run(await self.change_state(run_id, RunState.CANCELLED, reason))

    async def delete_data(self, run_id: str, reason: str = "") -> Run[Any, Any]:
        """Request deletion of the run's data (it must be completed, cancelled or already deleted); the workflow's
        delete process scrubs it (with custom_delete, if given) and marks the run DATA_DELETED."""
        return self._run(await self.change_state(run_id, RunState.REQUESTED_DATA_DELETED, reason))

    async def change_state(
        self, run_id: str, target: RunState, reason: str = "", *, workflow: str | None = None
    ) -> Record:
        """Move the run to `target` (PAUSED, RUNNING, CANCELLED or REQUESTED_DATA_DELETED) and return the stored
        record: what `pause`, `resume`, `cancel` and `delete_data` do, for tools that show records. RecordNotFound
        for an unknown run (or one not of `workflow`), InvalidTransition when its state cannot become `target`
        (nothing is written), VersionConflict if the run kept changing under every attempt."""
        if target not in CONTROLS.values():
            raise InvalidInput("target", f"one of {', '.join(s.name for s in CONTROLS.values())}", target)
        checks.reason(reason)
        control = next(name for name, state in CONTROLS.items() if state is target)
        with tracing.traced(control, f"api-{target.name.lower()}", run_id):
            return await self._change_state(run_id, target, reason, workflow)

    async def _change_state(self, run_id: str, target: RunState, reason: str, workflow: str | None) -> Record:
        before: Record | None = None
        for _ in range(CONTROL_ATTEMPTS):
            before = await self._record(run_id, workflow)
            if not before.run_state.can_become(target):
                raise InvalidTransition(run_id, before.run_state.name, target.name)
            writer = self._writers.get(before.workflow_name)
            clock = writer.clock if writer is not None else self._clock
            after = next_record(
                before, status=before.status, run_state=target, object=before.object, reason=reason, now=clock
            )
            tracing.describe(before)
            tracing.stamp(after)
            try:
                await self._store.store(after, expected_version=before.meta.version)
            except VersionConflict:
                continue
            tracing.note_stored(after)
            # Counted from the state as stored, as the reference's RunStateController counts it.
            self._metrics_of(before.workflow_name).run_state_change(before.run_state, target)
            if writer is not None:
                writer.decisions.log("run state changed", after, process=f"api-{target.name.lower()}")
            return after
        assert before is not None
        raise VersionConflict(run_id, before.meta.version, None)

    def _metrics_of(self, workflow_name: str) -> WorkflowMetrics:
        writer = self._writers.get(workflow_name)
        if writer is not None:
            return writer.metrics
        found = self._metrics.get(workflow_name)
        if found is None:
            found = self._metrics[workflow_name] = WorkflowMetrics(workflow_name)
        return found

    # -- forking -------------------------------------------------------------------------------------------------

    @overload
    async def fork(
        self,
        run_id: str,
        status: S | None = None,
        *,
        object: Any = None,
        workflow: Workflow[Any, S] | Builder[Any, S] | WorkflowSpec[Any, S],
    ) -> str: ...

    @overload
    async def fork(
        self, run_id: str, status: enum.IntEnum | int | None = None, *, object: Any = None, workflow: None = None
    ) -> str: ...

    async def fork(self, run_id: str, status: Any = None, *, object: Any = None, workflow: Any = None) -> str:
        """Start a new run of the run's workflow and foreign id at `status`, a status the run passed through
        (default: where it is now), and return the new run's id. The new run starts with the object as it was
        last stored at that status (from the run's history), or `object` instead, checked against the workflow's
        type; its meta records `forked_from` (this run's id) and `forked_from_status`.

        The run must be completed, cancelled or paused; a paused run is cancelled with the reason
        "forked to <new run id>" in the same transaction as the new run is stored, so a resume racing the fork
        either wins (the fork is then refused: the run is active) or finds the run cancelled. ForkRefused for an
        active run or one whose data was deleted, InvalidStatus for a status the run never reached (or one no
        step, callback or timeout consumes), WorkflowInProgress if another run of the foreign id is in progress.
        Needs the run's workflow among the client's (its code types the object and the statuses)."""
        given = await self._record(run_id, workflow)
        writer = self._writer(given.workflow_name)
        spec = writer.spec
        replacement = spec.codec.encode(spec.codec.coerce(object, "object")) if object is not None else None
        forked_id = new_run_id()
        origin = _caller()
        for _ in range(CONTROL_ATTEMPTS):
            before = await self._record(run_id)
            state = before.run_state
            if state in (RunState.DATA_DELETED, RunState.REQUESTED_DATA_DELETED) or before.object is None:
                raise ForkRefused(run_id, "its data was deleted, so there is no object to start from")
            if state not in (RunState.COMPLETED, RunState.CANCELLED, RunState.PAUSED):
                raise ForkRefused(
                    run_id, f"it is {state.name}, still active (pause or cancel it first, or wait for it to finish)"
                )
            history = await self._store.history(run_id)
            at = checks.member(spec, "status", before.status if status is None else status)
            reached = [version for version in history if version.status == int(at)]
            if not reached:
                passed = ", ".join(dict.fromkeys(writer.status_name(v.status) for v in history))
                raise InvalidStatus("status", f"a status run {run_id} reached ({passed})", at)
            consumed = set(spec.steps) | set(spec.callbacks) | set(spec.timeouts)
            if int(at) not in consumed:
                raise InvalidStatus(
                    "status", "a status that a step, callback or timeout consumes (a run started there moves on)", at
                )
            now = writer.clock.now()
            forked = Record(
                spec.name,
                before.foreign_id,
                forked_id,
                RunState.INITIATED,
                int(at),
                replacement if replacement is not None else reached[-1].object,
                now,
                now,
                Meta(
                    status_description=at.name,
                    version=1,
                    trace_origin=origin,
                    forked_from=run_id,
                    forked_from_status=int(at),
                ),
            )
            writes: builtins.list[tuple[Record, int | None]] = [(forked, None)]
            cancelled: Record | None = None
            if state is RunState.PAUSED:
                cancelled = writer.next_record(
                    before,
                    status=before.status,
                    run_state=RunState.CANCELLED,
                    object=before.object,
                    reason=f"forked to {forked_id}",
                )
                # The paused run stops first: until it does, it is the foreign id's run in progress.
                writes.insert(0, (cancelled, before.meta.version))
            try:
                await self._store.store_all(writes)
            except VersionConflict:
                if cancelled is None:
                    raise
                continue  # the paused run changed meanwhile (a resume, a cancel): look at it again
            if cancelled is not None:
                writer.metrics.run_state_change(RunState.PAUSED, RunState.CANCELLED)
                writer.decisions.log("run state changed", cancelled, process="api-fork")
            writer.metrics.run_state_change(RunState.UNKNOWN, RunState.INITIATED)
            writer.decisions.log("forked run", forked, process="api-fork")
            writer.stored(forked)
            return forked_id
        raise VersionConflict(run_id, before.meta.version, None)

    # -- callbacks -----------------------------------------------------------------------------------------------

    async def callback(self, workflow: Any, foreign_id: str, status: enum.IntEnum, payload: bytes) -> bool:
        """Hand `payload` to the callbacks of `status` for the foreign id's latest run of `workflow`. True if a
        callback moved the run on; False if the run was not at `status`, was stopped, or changed meanwhile."""
        writer = self._writer(workflow)
        member = checks.member(writer.spec, "status", status)
        checks.foreign_id(foreign_id)
        data = checks.payload(payload)
        callbacks = writer.spec.callbacks.get(int(member))
        if not callbacks:
            raise InvalidStatus("status", "a status with a callback", member)
        process = roles.make_role(member.name, "callback")
        with tracing.traced("callback", process, ""):
            return await self._callback(writer, member, foreign_id, data, callbacks, process)

    async def _callback(
        self,
        writer: RunWriter[Any, Any],
        member: enum.IntEnum,
        foreign_id: str,
        data: bytes,
        callbacks: Any,
        process: str,
    ) -> bool:
        applied = False
        for spec in callbacks:
            before = await self._store.latest(writer.name, foreign_id)
            tracing.describe(before)
            if before.status != int(member) or before.run_state.stopped():
                writer.decisions.log("callback skipped: run not at its status", before)
                tracing.note_skipped("run not at the callback's status or stopped")
                continue
            run = writer.to_run(before, processing=True)
            result = await writer.call(spec.fn, run, data)
            after = writer.decide(before, run, result, spec.destinations, f"callback of {member.name}")
            if after is None:
                continue
            applied = await writer.commit(before, after, process) or applied
        return applied


def _zero_value(spec: WorkflowSpec[T, Any]) -> T:
    try:
        return spec.object_type()
    except Exception as exc:
        raise InvalidInput(
            "initial_value", f"a {spec.object_type.__name__} (it cannot be made without arguments: {exc})"
        ) from None


def _values(field: str, values: object) -> tuple[object, ...]:
    # A bare string is a sequence too: "order-1" would filter by its characters.
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
        raise InvalidInput(field, "a list of values (alternatives)", values)
    return tuple(values)


def _moment(field: str, value: object) -> datetime | None:
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise InvalidInput(field, "a timezone-aware datetime or None", value)
    return value


def _status_number(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(field, "statuses (enum members or positive integers)", value)
    return int(value)


def _run_state(field: str, value: object) -> RunState:
    if not isinstance(value, RunState):
        raise InvalidInput(field, "conveyor.RunState members", value)
    return value


def _stored_value(raw: bytes | None) -> Any:
    """A run's object without its workflow's code: the stored JSON decoded, else the bytes as stored."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _caller() -> str:
    """Where the run was triggered from (file:line of the first frame outside conveyor, asyncio and the standard
    library's plumbing that may sit between, such as an async context manager)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(("conveyor.", "asyncio", "concurrent.", "contextlib", "functools", "threading")):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return ""
