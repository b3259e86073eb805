"""What the processes of one running workflow share: the adapters, the options, error counts, the drain and the
hand-off, over the `RunWriter` whose rules turn a function's result into a stored record."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from conveyor._core.clock import Clock
from conveyor._core.ports import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
from conveyor._core.records import Record
from conveyor._core.runstate import RunState
from conveyor._engine.handoff import Handoff
from conveyor._engine.options import Options, Resolved, resolve
from conveyor._engine.spec import CustomDeleteFn, WorkflowSpec
from conveyor._engine.supervise import Drain
from conveyor._engine.writer import RunWriter

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)
T_arg = TypeVar("T_arg")

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


class Runtime(RunWriter[T, S]):
    """What a running workflow adds to its writer: the streamer, role scheduler and timeout store its processes
    use, their options, error counts, drain and hand-off."""

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
        super().__init__(spec, store=store, clock=clock, debug=debug)
        self.streamer = streamer
        self.role_scheduler = role_scheduler
        self.timeout_store = timeout_store
        self.defaults = default_options
        self.custom_delete = custom_delete
        self.pause_retry = pause_retry
        self.errors = ErrorCounter()
        self.drain = Drain()
        # Step consumers running here, to which a stored step outcome goes at once (see `handoff`).
        self.handoff = Handoff()

    def options(self, own: Options) -> Resolved:
        return resolve(own, self.defaults)

    def stored(self, record: Record) -> None:
        # The first step may start at once if its consumer runs here (its event still follows; see `handoff`).
        self.handoff.offer(record)

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

    async def retrying(
        self, process: str, err_backoff: float, work: Callable[[T_arg], Awaitable[bool | None]], arg: T_arg
    ) -> None:
        """Do `work(arg)` until it succeeds, backing off after each failure (the event is not acknowledged
        meanwhile). Its latency is observed unless `work` returns False: it found its work done already, by
        someone who observed it (a handoff). `arg` is passed rather than bound in a lambda: this runs per event."""
        while True:
            started = time.perf_counter()
            try:
                done = await work(arg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.error(process)
                self.decisions.process_error("process error, backing off", exc, process, backoff=err_backoff)
                await self.drain.sleep(self.clock.sleep, err_backoff)
                continue
            if done is not False:
                self.metrics.latency(process, time.perf_counter() - started)
            return
