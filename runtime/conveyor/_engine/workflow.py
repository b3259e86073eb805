"""Workflow: a built workflow's public face. `run()` starts its processes (each behind its role; the table and
its supervision are `process_table`'s), `stop()` drains and stops them; the rest is the API users call (trigger,
wait_for, get_run, callback, schedule and the run controls), each done by the workflow's own `Client`: one path
for acting on runs, from a worker or from any other process."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, TypeVar

from conveyor._core.clock import Clock, SystemClock
from conveyor._core.ports import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
from conveyor._engine import checks, cron, process_table, processes, roles, tracing
from conveyor._engine.client import CONTROLS, Client
from conveyor._engine.opened import OpenAdapters
from conveyor._engine.options import STRANDED_CHECK_INTERVAL, Options
from conveyor._engine.roles import Process, ProcessInfo, ProcessKind
from conveyor._engine.run import Run
from conveyor._engine.runtime import Runtime
from conveyor._engine.spec import CustomDeleteFn, WorkflowSpec
from conveyor._engine.stranded import StrandedCheck, StrandedRuns
from conveyor._engine.visualise import mermaid
from conveyor.errors import InvalidInput, WorkflowNotRunning

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


class Workflow(Generic[T, S]):
    """Made by `Builder.build()`. Use as `async with wf:` or `await wf.run()` ... `await wf.stop()`."""

    def __init__(
        self,
        spec: WorkflowSpec[T, S],
        *,
        streamer: EventStreamer,
        store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: TimeoutStore | None,
        clock: Clock | None,
        debug: bool,
        default_options: Options,
        outbox: bool,
        custom_delete: CustomDeleteFn[T, S] | None,
        pause_retry: timedelta | None,
    ) -> None:
        self._spec = spec
        self._rt: Runtime[T, S] = Runtime(
            spec,
            streamer=streamer,
            store=store,
            role_scheduler=role_scheduler,
            timeout_store=timeout_store,
            clock=clock or SystemClock(),
            debug=debug,
            default_options=default_options,
            custom_delete=custom_delete,
            pause_retry=pause_retry,
        )
        self._client = Client._of(self._rt, streamer)
        self._stranded = StrandedCheck(self._rt, STRANDED_CHECK_INTERVAL.total_seconds())
        self._table = process_table.defined_processes(self._rt, self, outbox=outbox, stranded=self._stranded)
        process_table.fence(role_scheduler, self._table)
        self._supervisor = process_table.Supervisor(self._rt)
        self._running = False
        self._opened = OpenAdapters()

    # -- identity and introspection ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def spec(self) -> WorkflowSpec[T, S]:
        return self._spec

    @property
    def clock(self) -> Clock:
        return self._rt.clock

    @property
    def store(self) -> RecordStore:
        return self._rt.store

    @property
    def timeout_store(self) -> TimeoutStore | None:
        return self._rt.timeout_store

    @property
    def client(self) -> Client:
        """The client this workflow acts through, on its own store and runtime."""
        return self._client

    @property
    def running(self) -> bool:
        return self._running

    def processes(self) -> list[ProcessInfo]:
        """Every process of this workflow: its role, name, kind, step status and shard (schedules add theirs when
        started). A worker picks its processes from these."""
        return [p.info for p in self._table]

    def roles(self) -> list[str]:
        """Every role this workflow's processes hold (schedules add theirs when started)."""
        return [p.role for p in self._table]

    def states(self) -> dict[str, str]:
        """Process name -> Idle (waiting for its role), Running or Shutdown."""
        return self._supervisor.states()

    def mermaid(self) -> str:
        """The workflow's state diagram as mermaid text."""
        return mermaid(self._spec)

    def stranded_runs(self) -> tuple[StrandedRuns, ...] | None:
        """What this process's stranded-runs check counted last: the active runs at each status that no step,
        callback or timeout of this code moves (none: an empty tuple). None while the check has not counted here:
        it runs where its role is held (the system worker), at start and every 30 seconds, and forgets its counts
        when it stops. Nothing is done to those runs; see the README's "Changing a workflow's graph"."""
        return self._stranded.latest

    def add_process(
        self,
        role: str,
        body: Callable[[], Awaitable[None]],
        *,
        name: str | None = None,
        kind: str = "custom",
        err_backoff: float | None = None,
    ) -> ProcessInfo:
        """Add a process to this workflow's table, before `run()`: `body()` runs while `role` is held (through
        the workflow's role scheduler) and is restarted after `err_backoff` seconds (default: the workflow's) if
        it fails, like every other process; it shows in `roles()`, `states()` and the metrics under `name`."""
        if self._running:
            raise InvalidInput("add_process", "a call before the workflow runs", "a running workflow")
        if role in self.roles():
            raise InvalidInput("role", "a role that no other process of the workflow holds", role)
        backoff = self._rt.options(Options()).err_backoff if err_backoff is None else err_backoff
        process = process_table.added_process(role, body, name=name, kind=kind, err_backoff=backoff)
        self._table.append(process)
        return process.info

    # -- life cycle ----------------------------------------------------------------------------------------------

    async def run(self, *, roles: Collection[str] | None = None) -> None:
        """Open the adapters and start the processes (only those of `roles` if given; `roles=()` starts none, for
        a process that only triggers and controls runs). Returns once they are started."""
        if self._running:
            return
        every = {p.role: p for p in self._table}
        chosen = list(every.values())
        if roles is not None:
            unknown = [r for r in roles if r not in every]
            if unknown:
                raise InvalidInput("roles", f"roles of workflow {self.name!r} ({', '.join(every)})", unknown)
            chosen = [every[r] for r in roles]
        await self._open_adapters()
        # Asked as it starts, not when built: an application may set its tracer provider in between.
        self._rt.tracing = tracing.tracer()
        self._rt.drain.stopping.clear()
        self._running = True
        for process in chosen:
            self._supervisor.start(process)
        self._rt.decisions.log("workflow running", None, processes=len(chosen))

    async def _open_adapters(self) -> None:
        rt = self._rt
        adapters: list[Any] = [rt.store, rt.streamer, rt.role_scheduler]
        if rt.timeout_store is not None:
            adapters.append(rt.timeout_store)
        await self._opened.open(adapters)

    async def stop(self, *, grace: float = 10.0) -> None:
        """Let busy processes finish their current event (up to `grace` seconds), release every role, close
        the adapters."""
        if not self._running:
            return
        drain = self._rt.drain
        drain.stopping.set()
        await drain.wait_idle(grace)
        await self._supervisor.cancel_all()
        self._running = False
        await self._opened.close()
        self._rt.decisions.log("workflow stopped", None)

    async def __aenter__(self) -> Workflow[T, S]:
        await self.run()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _require_running(self, what: str) -> None:
        if not self._running:
            raise WorkflowNotRunning(f"{what} needs the workflow {self.name!r} running (`async with wf:` or run())")

    # -- the API: each is this workflow's client ---------------------------------------------------------------

    async def trigger(
        self,
        foreign_id: str,
        *,
        initial_value: T | None = None,
        start_at: S | None = None,
        run_id: str | None = None,
    ) -> str:
        """Start a run for `foreign_id` and return its run id. WorkflowInProgress if one is still in progress.

        With `run_id` the trigger is idempotent: if this workflow already has that run for `foreign_id` (a retried
        trigger, whatever the run's state now), its id is returned and nothing is created; InvalidInput if the id
        belongs to another workflow or foreign id."""
        self._require_running("trigger")
        return await self._client.trigger(
            self._spec, foreign_id, initial_value=initial_value, start_at=start_at, run_id=run_id
        )

    async def get_run(self, run_id: str) -> Run[T, S]:
        """The run's current state. RecordNotFound if this workflow has no such run."""
        self._require_running("get_run")
        return await self._client.get(run_id, self._spec)

    async def history(self, run_id: str) -> list[Run[T, S]]:
        """Every stored version of the run, oldest first."""
        self._require_running("history")
        return await self._client.history(run_id, self._spec)

    async def wait_for(self, foreign_id: str, run_id: str, status: S, *, timeout: float | None = None) -> Run[T, S]:
        """Wait until the run has reached `status` (at once if it already has) and return it as it was there;
        the built-in TimeoutError if `timeout` seconds pass first."""
        self._require_running("wait_for")
        checks.member(self._spec, "status", status)
        checks.foreign_id(foreign_id)
        checks.timeout(timeout)
        return self._rt.to_run(await self._client._wait(self._rt, foreign_id, run_id, status, timeout))

    async def fork(self, run_id: str, status: S | None = None, *, object: T | None = None) -> str:
        """Start a new run from a stopped run of this workflow at a status it passed through (default: where it
        is now), with the object it had there or `object`; a paused run is cancelled in the same transaction.
        Returns the new run's id. See `Client.fork`."""
        self._require_running("fork")
        return await self._client.fork(run_id, status, object=object, workflow=self._spec)

    async def callback(self, foreign_id: str, status: S, payload: bytes) -> bool:
        """Hand `payload` to the callbacks of `status` for the foreign id's latest run. True if a callback moved
        the run on; False if the run was not at `status`, was stopped, or changed meanwhile."""
        self._require_running("callback")
        return await self._client.callback(self._spec, foreign_id, status, payload)

    async def schedule(
        self,
        foreign_id: str,
        cron_spec: str,
        *,
        initial_value: T | None = None,
        filter: Callable[[], Any] | None = None,
    ) -> str:
        """Trigger a run for `foreign_id` on a cron schedule (five-field cron, @hourly-style names, or
        `@every 1h30m`), skipping a slot when a run is still in progress or `filter()` says no. Returns the
        schedule's role."""
        self._require_running("schedule")
        checks.foreign_id(foreign_id)
        next_after = cron.parse_schedule(cron_spec)
        value = self._spec.codec.coerce(initial_value, "initial_value") if initial_value is not None else None
        if filter is not None and not callable(filter):
            raise InvalidInput("filter", "a callable returning bool", filter)
        rt = self._rt
        info = ProcessInfo(
            roles.schedule_role(self.name, foreign_id, cron_spec),
            roles.make_role(foreign_id, "scheduler", cron_spec),
            ProcessKind.SCHEDULER,
        )

        def body() -> Awaitable[None]:
            return processes.scheduler(rt, self, foreign_id, next_after, value, filter)

        self._supervisor.start(Process(info, body, rt.options(Options()).err_backoff))
        return info.role

    async def pause(self, run_id: str, reason: str = "") -> Run[T, S]:
        return await self._control(run_id, "pause", reason)

    async def resume(self, run_id: str) -> Run[T, S]:
        return await self._control(run_id, "resume", "")

    async def cancel(self, run_id: str, reason: str = "") -> Run[T, S]:
        return await self._control(run_id, "cancel", reason)

    async def delete_data(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Request deletion of the run's data (it must be completed, cancelled or already deleted); the delete
        process scrubs it (with custom_delete, if given) and marks the run DATA_DELETED."""
        return await self._control(run_id, "delete", reason)

    async def _control(self, run_id: str, action: str, reason: str) -> Run[T, S]:
        self._require_running(action if action != "delete" else "delete_data")
        record = await self._client.change_state(run_id, CONTROLS[action], reason, workflow=self.name)
        return self._rt.to_run(record)
