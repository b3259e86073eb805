"""What every process and API call of one workflow shares: the adapters, the clock, the definition, and the
rules for turning a function's result into a stored record (the heart of the reference's semantics)."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast

from conveyor._core.clock import Clock
from conveyor._core.ports import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
from conveyor._core.records import Meta, Record
from conveyor._core.runstate import RunState
from conveyor._engine.handoff import Handoff
from conveyor._engine.logs import Decisions
from conveyor._engine.metrics import WorkflowMetrics
from conveyor._engine.options import Options, Resolved, resolve
from conveyor._engine.run import CancelRun, PauseRun, Run, SaveAndRepeat, Skip
from conveyor._engine.spec import CustomDeleteFn, WorkflowSpec, is_async
from conveyor._engine.supervise import Drain
from conveyor.errors import InvalidStatus, VersionConflict

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

AUTO_PAUSE_REASON = "max error retry threshold hit - automatically paused"


class ErrorCounter:
    """Errors per (error, process, run), as the reference counts them for pause_after_err_count."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}

    @staticmethod
    def _key(exc: BaseException, process: str, run_id: str) -> tuple[str, str, str]:
        return (f"{type(exc).__name__}: {exc}", process, run_id)

    def add(self, exc: BaseException, process: str, run_id: str) -> int:
        key = self._key(exc, process, run_id)
        self._counts[key] = count = self._counts.get(key, 0) + 1
        return count

    def clear(self, exc: BaseException, process: str, run_id: str) -> None:
        self._counts.pop(self._key(exc, process, run_id), None)


class Runtime(Generic[T, S]):
    def __init__(
        self,
        spec: WorkflowSpec[T, S],
        *,
        streamer: EventStreamer,
        store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: TimeoutStore | None,
        clock: Clock,
        debug: bool,
        default_options: Options,
        custom_delete: CustomDeleteFn[T, S] | None,
        pause_retry: timedelta | None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.streamer = streamer
        self.store = store
        self.role_scheduler = role_scheduler
        self.timeout_store = timeout_store
        self.clock = clock
        self.defaults = default_options
        self.custom_delete = custom_delete
        self.pause_retry = pause_retry
        self.decisions = Decisions(spec.name, debug, monotonic=lambda: clock.now().timestamp())
        self.metrics = WorkflowMetrics(spec.name)
        self.errors = ErrorCounter()
        self.drain = Drain()
        # Step consumers running here, to which a stored step outcome goes at once (see `handoff`).
        self.handoff = Handoff()
        self._async_cache: dict[Callable[..., Any], bool] = {}
        self._status_cache: dict[int, S] = {member.value: member for member in spec.status_type}

    def options(self, own: Options) -> Resolved:
        return resolve(own, self.defaults)

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

    def to_run(self, record: Record, *, processing: bool = False) -> Run[T, S]:
        """The typed run of a record. `processing`: a step is about to act on it, so an initiated run is shown
        as running (the reference's behaviour); the change is stored with the step's outcome."""
        run_state = record.run_state
        if processing and run_state is RunState.INITIATED:
            run_state = RunState.RUNNING
        value = self.spec.codec.decode(record.object) if record.object is not None else None
        return Run(
            workflow_name=record.workflow_name,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            run_state=run_state,
            status=self.status(record.status),
            object=cast(T, value),
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
        meta = before.meta
        return Record(
            before.workflow_name,
            before.foreign_id,
            before.run_id,
            run_state,
            status,
            object,
            before.created_at,
            self.clock.now(),
            Meta(
                meta.run_state_reason if reason is None else reason,
                self._describe(status),
                meta.version + 1,
                meta.trace_origin,
            ),
        )

    def _describe(self, status: int) -> str:
        member = self._status_cache.get(status)
        return member.name if member is not None else str(status)

    def decide(
        self, before: Record, run: Run[T, S], result: object, allowed: tuple[S, ...], what: str
    ) -> Record | None:
        """The record a function's result asks for, or None to skip. Raises (an error to count and back off
        from) for a result the function may not return."""
        if isinstance(result, Skip):
            return None
        acting_state = RunState.RUNNING if before.run_state is RunState.INITIATED else before.run_state
        if isinstance(result, PauseRun | CancelRun):
            target = RunState.PAUSED if isinstance(result, PauseRun) else RunState.CANCELLED
            if not acting_state.can_become(target):
                raise InvalidStatus(f"{what} result", f"a run state change allowed from {acting_state.name}", result)
            return self.next_record(
                before, status=before.status, run_state=target, object=before.object, reason=result.reason
            )
        if isinstance(result, SaveAndRepeat):
            encoded = self.spec.codec.encode(run.object)
            return self.next_record(before, status=before.status, run_state=RunState.RUNNING, object=encoded)
        if isinstance(result, bool) or not isinstance(result, int):
            raise InvalidStatus(
                f"{what} result",
                "a status, or run.skip() / run.pause() / run.cancel() / run.save_and_repeat()",
                result,
            )
        if result == 0:
            return None  # the zero status means "no status": skip, as in the reference
        if result not in allowed:
            names = ", ".join(s.name for s in allowed)
            raise InvalidStatus(f"{what} result", f"one of the statuses it declared ({names})", result)
        next_state = RunState.COMPLETED if self.spec.graph.is_terminal(result) else RunState.RUNNING
        encoded = self.spec.codec.encode(run.object)
        return self.next_record(before, status=int(result), run_state=next_state, object=encoded)

    async def commit(self, before: Record, after: Record, process: str, *, as_stored: bool = False) -> bool:
        """Store `after` if the run is still where `before` found it; otherwise discard it (counted skipped).
        The run state change is counted from the state a function saw (an initiated run is running to a step, as
        in the reference), or with `as_stored` from the stored state (the run controls, as the reference's
        RunStateController does on a record it looked up)."""
        try:
            await self.store.store(after, expected_version=before.meta.version)
        except VersionConflict:
            self.metrics.skipped(process, "outcome discarded: run changed meanwhile")
            self.decisions.log("outcome discarded: the run changed while the function ran", before, process=process)
            return False
        previous = RunState.RUNNING if before.run_state is RunState.INITIATED and not as_stored else before.run_state
        self.metrics.run_state_change(previous.label, after.run_state.label)
        if self.decisions.enabled:
            self.decisions.log(
                "stored outcome",
                after,
                process=process,
                from_status=before.status,
                from_run_state=before.run_state.name,
            )
        return True

    async def auto_pause(self, before: Record, exc: BaseException, process: str, limit: int) -> bool:
        """Count the error; once it happened `limit` times for this run and process, pause the run."""
        if limit <= 0:
            return False
        count = self.errors.add(exc, process, before.run_id)
        if count < limit:
            self.decisions.log("error counted", before, process=process, count=count, limit=limit)
            return False
        acting_state = RunState.RUNNING if before.run_state is RunState.INITIATED else before.run_state
        if not acting_state.can_become(RunState.PAUSED):
            return False
        paused = self.next_record(
            before,
            status=before.status,
            run_state=RunState.PAUSED,
            object=before.object,
            reason=AUTO_PAUSE_REASON,
        )
        await self.commit(before, paused, process)
        self.decisions.log("paused after too many errors", before, process=process, count=count)
        # As the reference does: the count starts again once the run is paused.
        self.errors.clear(exc, process, before.run_id)
        return True

    async def retrying(self, process: str, err_backoff: float, work: Callable[[], Awaitable[None]]) -> None:
        """Do `work` until it succeeds, backing off after each failure (the event is not acknowledged meanwhile)."""
        while True:
            started = time.perf_counter()
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.error(process)
                self.decisions.process_error("process error, backing off", exc, process, backoff=err_backoff)
                await self.drain.sleep(self.clock.sleep, err_backoff)
                continue
            self.metrics.latency(process, time.perf_counter() - started)
            return
