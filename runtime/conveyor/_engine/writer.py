"""The rules that turn what happened to a run into its next stored record, shared by everything that writes runs:
the workflow's processes (a step's, callback's or timeout's result) and `Client` (a trigger, a run control, a
callback made from another process). Kept apart from `Runtime` because a `Client` has a record store and the
workflow's code but no streamer, role scheduler or processes.

Every write is the store's `store(record, expected_version=...)`: the record and its outbox event in one
transaction, under a version check, so two writers acting on one run never overwrite each other."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from conveyor._core.clock import Clock
from conveyor._core.ports import RecordStore
from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState
from conveyor._engine import tracing
from conveyor._engine.logs import Decisions
from conveyor._engine.metrics import WorkflowMetrics
from conveyor._engine.run import CancelRun, PauseRun, Run, SaveAndRepeat, Skip
from conveyor._engine.spec import WorkflowSpec, is_async
from conveyor.errors import InvalidStatus, VersionConflict

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


class RunWriter(Generic[T, S]):
    """One workflow's definition, record store and clock, and the rules for writing its runs."""

    def __init__(self, spec: WorkflowSpec[T, S], *, store: RecordStore, clock: Clock, debug: bool) -> None:
        self.spec = spec
        self.name = spec.name
        self.store = store
        self.clock = clock
        self.decisions = Decisions(spec.name, debug, monotonic=lambda: clock.now().timestamp())
        self.metrics = WorkflowMetrics(spec.name)
        # None unless opentelemetry is installed: then every write carries its span's context (see `tracing`).
        self.tracing = tracing.tracer()
        self._async_cache: dict[Callable[..., Any], bool] = {}
        self._status_cache: dict[int, S] = {member.value: member for member in spec.status_type}
        # An enum member's name is a Python-level descriptor: read once here, not per transition.
        self._status_names: dict[int, str] = {member.value: member.name for member in spec.status_type}
        # The statuses that complete a run, asked of the graph once: a step's result is looked up here.
        self._terminal = frozenset(node for node in spec.graph.nodes if spec.graph.is_terminal(node))

    def stored(self, record: Record) -> None:
        """A run was triggered and stored; a `Runtime` hands it to its first step at once if that runs here."""

    # -- running user code -------------------------------------------------------------------------------------

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Await an async function; run a plain one in a worker thread so it cannot block the loop."""
        try:
            async_fn = self._async_cache.get(fn)
            if async_fn is None:
                async_fn = self._async_cache[fn] = is_async(fn)
        except TypeError:  # an unhashable callable object
            async_fn = is_async(fn)
        if async_fn:
            return await fn(*args)
        result = await asyncio.to_thread(fn, *args)
        if isinstance(result, Awaitable):
            return await result
        return result

    # -- records and runs --------------------------------------------------------------------------------------

    def status(self, value: int) -> S:
        member = self._status_cache.get(value)
        if member is None:
            raise InvalidStatus("status", f"a {self.spec.status_type.__name__}", value)
        return member

    def status_name(self, value: int) -> str:
        """The status's name, or its number if the code no longer has it (a run stored by older code)."""
        name = self._status_names.get(value)
        return name if name is not None else str(value)

    def to_run(self, record: Record, *, processing: bool = False) -> Run[T, S]:
        """The typed run of a record. `processing`: a step is about to act on it, so an initiated run is shown
        as running (the reference's behaviour); the change is stored with the step's outcome."""
        run_state = record.run_state
        if processing and run_state is RunState.INITIATED:
            run_state = RunState.RUNNING
        # Any, not typing.cast(T, ...): cast is a Python call, and this runs per step.
        value: Any = self.spec.codec.decode(record.object) if record.object is not None else None
        return Run(
            workflow_name=record.workflow_name,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            run_state=run_state,
            status=self.status(record.status),
            object=value,
            created_at=record.created_at,
            updated_at=record.updated_at,
            meta=record.meta,
        )

    def next_record(
        self,
        before: Record,
        *,
        status: int,
        run_state: RunState,
        object: bytes | None,
        reason: str | None = None,
    ) -> Record:
        name = self._status_names.get(status)
        after = next_record(
            before,
            status=status,
            run_state=run_state,
            object=object,
            reason=reason,
            now=self.clock,
            description=name if name is not None else str(status),
        )
        if self.tracing is not None:
            self.tracing.stamp(after)
        return after

    def decide(
        self, before: Record, run: Run[T, S], result: object, allowed: tuple[S, ...], what: str
    ) -> Record | None:
        """The record a function's result asks for, or None to skip. Raises (an error to count and back off
        from) for a result the function may not return."""
        if isinstance(result, int) and not isinstance(result, bool):
            # A status (an IntEnum member), by far the most common result: checked first.
            if result == 0:
                return None  # the zero status means "no status": skip, as in the reference
            if result not in allowed:
                names = ", ".join(s.name for s in allowed)
                raise InvalidStatus(f"{what} result", f"one of the statuses it declared ({names})", result)
            next_state = RunState.COMPLETED if result in self._terminal else RunState.RUNNING
            encoded = self.spec.codec.encode(run.object)
            return self.next_record(before, status=int(result), run_state=next_state, object=encoded)
        if isinstance(result, Skip):
            return None
        if isinstance(result, PauseRun | CancelRun):
            acting_state = RunState.RUNNING if before.run_state is RunState.INITIATED else before.run_state
            target = RunState.PAUSED if isinstance(result, PauseRun) else RunState.CANCELLED
            if not acting_state.can_become(target):
                raise InvalidStatus(f"{what} result", f"a run state change allowed from {acting_state.name}", result)
            return self.next_record(
                before, status=before.status, run_state=target, object=before.object, reason=result.reason
            )
        if isinstance(result, SaveAndRepeat):
            encoded = self.spec.codec.encode(run.object)
            return self.next_record(before, status=before.status, run_state=RunState.RUNNING, object=encoded)
        raise InvalidStatus(
            f"{what} result",
            "a status, or run.skip() / run.pause() / run.cancel() / run.save_and_repeat()",
            result,
        )

    async def commit(self, before: Record, after: Record, process: str) -> bool:
        """Store `after` if the run is still where `before` found it; otherwise discard it (counted skipped).
        The run state change is counted from the state the function saw: an initiated run is running to a step,
        as in the reference."""
        try:
            await self.store.store(after, expected_version=before.meta.version)
        except VersionConflict:
            self.metrics.skipped(process, "outcome discarded: run changed meanwhile")
            self.decisions.log("outcome discarded: the run changed while the function ran", before, process=process)
            return False
        if self.tracing is not None:
            tracing.note_stored(after)
        previous = RunState.RUNNING if before.run_state is RunState.INITIATED else before.run_state
        self.metrics.run_state_change(previous, after.run_state)
        if self.decisions.enabled:
            self.decisions.log(
                "stored outcome",
                after,
                process=process,
                from_status=before.status,
                from_run_state=before.run_state.name,
            )
        return True


def next_record(
    before: Record,
    *,
    status: int,
    run_state: RunState,
    object: bytes | None,
    now: Clock,
    reason: str | None = None,
    description: str | None = None,
) -> Record:
    """The run's next version: one up, updated now, the reason kept unless a new one is given, the status's name
    as its description (kept as it was when the status does not change and no name is given)."""
    meta = before.meta
    if description is None:
        description = meta.status_description if status == before.status else str(status)
    return Record(
        before.workflow_name,
        before.foreign_id,
        before.run_id,
        run_state,
        status,
        object,
        before.created_at,
        now.now(),
        Meta(
            meta.run_state_reason if reason is None else reason,
            description,
            meta.version + 1,
            meta.trace_origin,
            meta.forked_from,
            meta.forked_from_status,
        ),
    )
